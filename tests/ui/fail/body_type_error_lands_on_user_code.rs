use promtrack as metrics;

#[metrics::counter("jobs_total", "Jobs run.")]
async fn run() -> Result<u32, String> {
    let n: u32 = "1".parse().map_err(|_| "bad".to_string())?;
    Ok(n == 1)
}

fn main() {}
