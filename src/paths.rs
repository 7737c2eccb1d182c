//! Paths as the person reading a message finds them.
//!
//! scimwatch resolves relative paths in the config against the config file's folder, so
//! internally they are absolute. A message should name a file the way the person at the
//! terminal can open it: relative to where they stand when it is below their current
//! directory, else absolute. (The `mapping.file` field of findings keeps its documented
//! form, relative to the config file's folder; this is only for messages.)

use std::path::Path;

/// `path` relative to the current directory when below it, else as it is.
pub fn shown(path: &Path) -> String {
    match std::env::current_dir() {
        Ok(cwd) => shown_from(path, &cwd),
        Err(_) => path.display().to_string(),
    }
}

/// [`shown`] from `cwd` (pure, for tests). Standing at `/` (a service, a container),
/// every path is below it and none reads better relative: absolute then.
pub fn shown_from(path: &Path, cwd: &Path) -> String {
    if cwd.parent().is_none() {
        return path.display().to_string();
    }
    match path.strip_prefix(cwd) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
        _ => path.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standing_at_the_root_paths_stay_absolute() {
        assert_eq!(
            shown_from(Path::new("/etc/scimwatch/scimwatch.toml"), Path::new("/")),
            "/etc/scimwatch/scimwatch.toml"
        );
    }

    #[test]
    fn below_the_current_directory_is_relative_elsewhere_absolute() {
        let cwd = Path::new("/home/ana/work");
        assert_eq!(
            shown_from(Path::new("/home/ana/work/etc/mappings/prod.toml"), cwd),
            "etc/mappings/prod.toml"
        );
        assert_eq!(
            shown_from(Path::new("/etc/scimwatch/mappings/prod.toml"), cwd),
            "/etc/scimwatch/mappings/prod.toml"
        );
        assert_eq!(shown_from(cwd, cwd), "/home/ana/work");
        // A sibling with the same prefix is not "below".
        assert_eq!(
            shown_from(Path::new("/home/ana/workshop/x.toml"), cwd),
            "/home/ana/workshop/x.toml"
        );
    }
}
