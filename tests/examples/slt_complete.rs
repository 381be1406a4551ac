//! Fills in the expected results of sqllogictest files from a running PostgreSQL:
//! `cargo run -p tests --example slt_complete -- PORT FILE…` (tests/golden/slt/generate
//! starts PostgreSQL 15 and calls this).

use sqllogictest::{default_column_validator, default_normalizer, default_validator, Runner};
use tests::slt::SltClient;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .ok_or("usage: slt_complete PORT FILE…")?
        .parse()?;
    for file in args {
        let mut runner = Runner::new(move || SltClient::connect(port));
        runner
            .update_test_file(
                &file,
                " ",
                default_validator,
                default_normalizer,
                default_column_validator,
            )
            .await?;
        runner.shutdown_async().await;
        println!("completed {file}");
    }
    Ok(())
}
