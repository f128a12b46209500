//! Every size or count a request names is checked against a documented limit before anything
//! is allocated for it (README, "Limits"): each row sends the hostile value to the real
//! binary, checks the status and the text naming what was wrong, and checks that the server
//! still serves afterwards.

mod common;

use common::Vivace;

/// One hostile request: a path with its query string, the status expected, a fragment of the
/// answer's text.
struct Row {
    path: &'static str,
    status: u16,
    says: &'static str,
}

const ROWS: &[Row] = &[
    // 86,400 s at a microsecond step is 8.64e10 points; once this aborted the process.
    Row {
        path: "/api/metrics/query_range?q=%7B%7D%7Crate()&since=24h&step=0.000001",
        status: 400,
        says: "maximum resolution of 11000 points",
    },
    Row {
        path: "/api/metrics/query_range?q=%7B%7D%7Crate()&since=1h&step=0.3",
        status: 400,
        says: "maximum resolution of 11000 points",
    },
];

#[tokio::test(flavor = "multi_thread")]
async fn hostile_sizes_get_4xx_and_the_server_keeps_serving() {
    let vivace = Vivace::start("");
    let client = reqwest::Client::new();
    let mut ran = 0;
    for row in ROWS {
        let response = client.get(vivace.url(row.path)).send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, row.status, "{}: {text}", row.path);
        assert!(text.contains(row.says), "{}: {text}", row.path);
        let ready = client.get(vivace.url("/ready")).send().await.unwrap();
        assert_eq!(ready.status(), 200, "after {}", row.path);
        ran += 1;
    }
    assert_eq!(ran, ROWS.len());
    assert_eq!(ran, 2, "rows in the limits table");
}
