//! Build-time facts:
//! - Rebuild when a migration is added: `sqlx::migrate!` embeds `migrations/` at compile
//!   time and cargo would not otherwise notice a new file.
//! - The git commit for `--version` (`SCIMWATCH_GIT_COMMIT`): from the environment when a
//!   packager sets it, else `git rev-parse`, else "unknown" (a source tarball without
//!   `.git`). Rebuilt when HEAD moves.
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-env-changed=SCIMWATCH_GIT_COMMIT");
    let commit = std::env::var("SCIMWATCH_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        // No "-dirty" mark: the script reruns when HEAD moves, not on every edit, so the
        // mark would go stale.
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=SCIMWATCH_GIT_COMMIT={commit}");
    // HEAD (a worktree has its own), the branch it points at, and packed refs.
    for path in [
        git(&["rev-parse", "--git-path", "HEAD"]),
        git(&["symbolic-ref", "-q", "HEAD"]).and_then(|r| git(&["rev-parse", "--git-path", &r])),
        git(&["rev-parse", "--git-path", "packed-refs"]),
    ]
    .into_iter()
    .flatten()
    {
        println!("cargo:rerun-if-changed={path}");
    }
}
