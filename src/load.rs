//! The load tool: places many concurrent scripted calls against a hotline and measures it.

/// Options of `hotline load`.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// Concurrent calls to place.
    #[arg(long, default_value_t = 100)]
    pub calls: usize,
}

/// Runs the load; returns whether every check held.
pub async fn run(_args: LoadArgs) -> anyhow::Result<bool> {
    anyhow::bail!("the load tool is not written yet")
}
