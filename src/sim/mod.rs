//! The simulator (sim.md). (Temporary stand-in until the simulator branch lands.)
pub struct SimHandle;
impl SimHandle {
    pub fn url(&self) -> String {
        String::new()
    }
    pub fn config_toml(&self, _m: &std::path::Path, _e: &str) -> String {
        String::new()
    }
    pub async fn stop(self) {}
}
pub async fn start(_seed: &str, _listen: &str) -> anyhow::Result<SimHandle> {
    anyhow::bail!("x")
}
pub async fn run_cli(
    _s: &std::path::Path,
    _l: &str,
    _w: Option<&std::path::Path>,
    _m: &std::path::Path,
) -> anyhow::Result<()> {
    Ok(())
}
