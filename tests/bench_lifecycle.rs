//! `vivace bench --lifecycle` with a tiny load: the table has a row per stage with a
//! non-negative figure, and the stages together never exceed the process's CPU. Figures are
//! reported, never compared with a time.

use std::process::Command;

const STAGES: [&str; 9] = [
    "decode",
    "distributor",
    "generator",
    "wal",
    "head",
    "block_encode",
    "bloom_index",
    "compaction",
    "upload",
];

/// The first number after `label` on the line that starts with it.
fn first_number(line: &str) -> f64 {
    line.split_whitespace()
        .nth(1)
        .and_then(|field| field.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no figure on {line:?}"))
}

#[test]
fn lifecycle_table_has_every_stage_within_the_process_cpu() {
    let output = Command::new(env!("CARGO_BIN_EXE_vivace"))
        .args([
            "bench",
            "--lifecycle",
            "--spans",
            "2000",
            "--push-seconds",
            "10",
            "--connections",
            "2",
            "--drain-timeout-seconds",
            "120",
        ])
        .output()
        .expect("vivace bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench failed\n{stdout}\n{stderr}");
    assert!(
        !stdout.contains("drain timed out"),
        "the drain should finish for a tiny load\n{stdout}"
    );
    let accepted_line = stdout
        .lines()
        .find(|line| line.starts_with("spans accepted:"))
        .unwrap_or_else(|| panic!("no spans accepted line\n{stdout}"));
    let accepted: u64 = accepted_line
        .split_whitespace()
        .nth(2)
        .and_then(|field| field.parse().ok())
        .unwrap_or_else(|| panic!("no span count on {accepted_line:?}"));
    assert!(accepted >= 2000, "{stdout}");

    let mut stage_sum = 0.0;
    for stage in STAGES {
        let line = stdout
            .lines()
            .find(|line| line.split_whitespace().next() == Some(stage))
            .unwrap_or_else(|| panic!("no row for stage {stage}\n{stdout}"));
        let seconds = first_number(line);
        assert!(seconds >= 0.0, "negative CPU for {stage}: {line}");
        stage_sum += seconds;
    }
    let process_line = stdout
        .lines()
        .find(|line| line.split_whitespace().next() == Some("process"))
        .unwrap_or_else(|| panic!("no process row\n{stdout}"));
    let process = first_number(process_line);
    assert!(process > 0.0, "{stdout}");
    // The table prints three decimals; allow the rounding of ten rows.
    assert!(
        stage_sum <= process + 0.005,
        "stages {stage_sum} exceed the process {process}\n{stdout}"
    );
    // The load went through its whole life: spans were encoded into a block.
    let block_encode = stdout
        .lines()
        .find(|line| line.starts_with("block_encode"))
        .map(first_number)
        .unwrap_or(0.0);
    assert!(block_encode > 0.0, "no block was encoded\n{stdout}");
    assert!(stdout.contains("bytes on disk per span:"), "{stdout}");
}
