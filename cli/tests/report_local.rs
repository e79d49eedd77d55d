//! `guardrails report DEPLOYMENT --html FILE` of a real rollback on the local stack, opened in
//! a real headless Chromium: GIVEN a canary of a model answering 30% of its requests with a
//! 5xx (and three times slower) that its alarm rolls back, WHEN the operator writes its report,
//! THEN the page, with no network, draws green's share as steps, each variant's error rate and
//! latency from CloudWatch, the alarm's band and a marker for every transition with its cause;
//! a page missing a series is caught, in the DOM and on screen. And the functions' output,
//! as CloudWatch Logs extracts its embedded metrics, counts the rollback by engine and
//! outcome, its seconds back to blue, and a refused command.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::{OPERATOR, dump_dom, guardrails, screenshot};
use guardrails_local::stack::default_template;
use guardrails_local::traffic::Behaviour;
use guardrails_tests::flow::Flow;
use guardrails_tests::local::{endpoint_serving, model, set_behaviour};
use scraper::{Html, Selector};
use serde_json::Value;

const ENDPOINT: &str = "fraud";
const SERIES: [&str; 6] = [
    "green-share",
    "green-share-measured",
    "blue-error-rate",
    "green-error-rate",
    "blue-latency-p99",
    "green-latency-p99",
];
/// The chart's colours (cli/src/chart.rs).
const BLUE: [u8; 3] = [0x1d, 0x4e, 0xd8];
const GREEN: [u8; 3] = [0x15, 0x80, 0x3d];
/// #dc2626 at 16% over white.
const BAND: [u8; 3] = [249, 220, 220];

fn select<'a>(dom: &'a Html, css: &str) -> Vec<scraper::ElementRef<'a>> {
    dom.select(&Selector::parse(css).unwrap()).collect()
}

/// The series the DOM does not draw (absent, with no data, or with no line to see). How many
/// periods green served before the rollback depends on how the second boundaries fall; one is
/// enough, as the chart draws a lone datapoint across its period.
fn missing_series(dom: &Html) -> Vec<&'static str> {
    SERIES
        .into_iter()
        .filter(|id| {
            let drawn = select(dom, &format!("path.series[data-series=\"{id}\"]"));
            drawn.first().is_none_or(|p| {
                let points: usize = p.attr("data-points").unwrap().parse().unwrap();
                let d = p.attr("d").unwrap_or_default();
                points < 1 || !d.contains('L')
            })
        })
        .collect()
}

/// A panel's place on the page: (left, top, width, height).
fn panel(dom: &Html, key: &str) -> (u32, u32, u32, u32) {
    let g = select(dom, &format!("g#panel-{key}"));
    let g = g.first().unwrap_or_else(|| panic!("no panel {key}"));
    let n = |a: &str| g.attr(a).unwrap().parse::<u32>().unwrap();
    (
        n("data-left"),
        n("data-top"),
        n("data-width"),
        n("data-height"),
    )
}

struct Screen {
    width: u32,
    /// Bytes per pixel: 3 (RGB) or 4 (RGBA).
    channels: u32,
    pixels: Vec<u8>,
}

impl Screen {
    fn read(png: &Path) -> Screen {
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        let channels = match info.color_type {
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
            other => panic!("a screenshot in {other:?}"),
        };
        buf.truncate(info.buffer_size());
        Screen {
            width: info.width,
            channels,
            pixels: buf,
        }
    }

    /// How many pixels of the area are within a few steps of `colour`.
    fn count(&self, (left, top, width, height): (u32, u32, u32, u32), colour: [u8; 3]) -> usize {
        let mut n = 0;
        for y in top..top + height {
            for x in left..left + width {
                let i = ((y * self.width + x) * self.channels) as usize;
                let near = (0..3).all(|c| self.pixels[i + c].abs_diff(colour[c]) <= 8);
                n += usize::from(near);
            }
        }
        n
    }
}

/// The colours each panel must show, drawn by its series (and the alarm's band).
fn missing_on_screen(dom: &Html, screen: &Screen) -> Vec<String> {
    let mut missing = Vec::new();
    for (key, colours) in [
        ("share", vec![("green", GREEN)]),
        (
            "errors",
            vec![("blue", BLUE), ("green", GREEN), ("alarm band", BAND)],
        ),
        ("latency", vec![("blue", BLUE), ("green", GREEN)]),
    ] {
        let area = panel(dom, key);
        for (what, colour) in colours {
            // A line 2.5 px wide across a few dozen px at least.
            if screen.count(area, colour) < 40 {
                missing.push(format!("{what} in the {key} panel"));
            }
        }
    }
    missing
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_is_reported_drawn_and_counted() {
    let flow = Flow::start(&default_template()).await;
    endpoint_serving(&flow.admin, ENDPOINT, "fraud-v1", "fraud-model-v1", 2).await;
    model(&flow.admin, "fraud-model-v3").await;
    set_behaviour(
        &flow.stack,
        "fraud-model-v3",
        Behaviour {
            error_rate: 0.3,
            latency_ms: 60.0,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, common::canary_policy(60)).unwrap();
    let policy = policy.to_str().unwrap();
    let args = [
        "deploy",
        "--endpoint",
        ENDPOINT,
        "--model",
        "fraud-model-v3",
        "--policy",
        policy,
        "--deployment-id",
        "d-bad",
        "--wait",
        "--yes",
    ];
    let (code, out, err) = guardrails(&flow, OPERATOR, &args);
    assert_eq!(code, 2, "rolled back: {out}{err}");

    let page = dir.path().join("report.html");
    let page_arg = page.to_str().unwrap();
    let (code, out, err) = guardrails(&flow, OPERATOR, &["report", "d-bad", "--html", page_arg]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("report of d-bad written"), "{out}");
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing to fetch.
    for outside in ["src=", "href=", "@import", "url("] {
        assert!(!html.contains(outside), "{outside} in the page");
    }

    // The DOM as Chromium built it.
    let profile = dir.path().join("profile");
    let dom = Html::parse_document(&dump_dom(&page, &profile));
    assert_eq!(missing_series(&dom), Vec::<&str>::new(), "{html}");
    let bands = select(&dom, "rect.alarm-band");
    assert!(
        bands
            .iter()
            .any(|b| b.attr("data-alarm") == Some("guardrails-d-bad-errors")),
        "the alarm's band: {html}"
    );
    let (_, shown, _) = guardrails(&flow, OPERATOR, &["show", "d-bad", "--output", "json"]);
    let shown: Value = serde_json::from_str(&shown).unwrap();
    let timeline = shown["timeline"].as_array().unwrap();
    let markers = select(&dom, "g.transition");
    assert_eq!(markers.len(), timeline.len(), "a marker per transition");
    let rolling_back = markers
        .iter()
        .find(|m| m.attr("data-state") == Some("ROLLING_BACK"))
        .expect("the rollback's marker");
    let hover: String = rolling_back.text().collect();
    assert!(
        hover.contains("guardrails-d-bad-errors"),
        "its cause on hover: {hover}"
    );
    let title: String = select(&dom, "svg#chart text.title")[0].text().collect();
    assert!(title.contains("d-bad on fraud: ROLLED_BACK"), "{title}");

    // On screen: each panel shows its series' colours and the alarm's band.
    let height: u32 = select(&dom, "svg#chart")[0]
        .attr("height")
        .unwrap()
        .parse()
        .unwrap();
    let png = dir.path().join("report.png");
    screenshot(&page, &profile, 1_100, height, &png);
    let screen = Screen::read(&png);
    assert_eq!(missing_on_screen(&dom, &screen), Vec::<String>::new());
    if let Ok(keep) = std::env::var("GUARDRAILS_REPORT_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
    }

    // A page without green's error rate is caught, in the DOM and on screen.
    let without = regex_free_remove(&html, "green-error-rate");
    let broken = dir.path().join("broken.html");
    std::fs::write(&broken, without).unwrap();
    let dom = Html::parse_document(&dump_dom(&broken, &profile));
    assert_eq!(missing_series(&dom), ["green-error-rate"]);
    let png = dir.path().join("broken.png");
    screenshot(&broken, &profile, 1_100, height, &png);
    let missing = missing_on_screen(&dom, &Screen::read(&png));
    assert_eq!(missing, ["green in the errors panel"]);

    // Guardrails' own metrics, from the functions' output as CloudWatch Logs extracts them:
    // the rollback by engine and outcome, its seconds back to blue, and a refused command.
    let (code, _, err) = guardrails(
        &flow,
        OPERATOR,
        &[
            "deploy",
            "--endpoint",
            "nowhere",
            "--model",
            "fraud-model-v3",
            "--policy",
            policy,
        ],
    );
    assert_eq!(code, 1, "refused: {err}");
    let sum = |metric, dims| guardrails_sum(&flow.admin.cloudwatch, metric, dims);
    let rolled_back = [("Engine", "variant"), ("Outcome", "ROLLED_BACK")];
    assert_eq!(sum("Deployments", &rolled_back).await, 1.0);
    assert_eq!(
        sum(
            "Deployments",
            &[("Engine", "variant"), ("Outcome", "SUCCEEDED")]
        )
        .await,
        0.0
    );
    let to_blue = sum("SecondsToBlue", &[("Engine", "variant")]).await;
    assert!(
        to_blue > 0.0 && to_blue < 60.0,
        "seconds to blue: {to_blue}"
    );
    let refused = sum("EventsRefused", &[("Function", "start-deployment")]).await;
    assert!(refused >= 1.0, "{refused}");
    assert_eq!(
        sum("FunctionErrors", &[("Function", "bake-watcher")]).await,
        0.0
    );
}

/// The page without the path and legend of one series.
fn regex_free_remove(html: &str, id: &str) -> String {
    html.lines()
        .filter(|l| !l.contains(&format!("data-series=\"{id}\"")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The sum of Guardrails' metric `metric` with `dims` over the last hour.
async fn guardrails_sum(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    metric: &str,
    dims: &[(&str, &str)],
) -> f64 {
    use aws_sdk_cloudwatch::primitives::DateTime;
    use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
    let now = i64::try_from(std::time::UNIX_EPOCH.elapsed().unwrap().as_secs()).unwrap();
    let mut m = Metric::builder()
        .namespace("Guardrails")
        .metric_name(metric);
    for (n, v) in dims {
        m = m.dimensions(Dimension::builder().name(*n).value(*v).build());
    }
    let stat = MetricStat::builder()
        .metric(m.build())
        .period(3_600)
        .stat("Sum");
    let query = MetricDataQuery::builder()
        .id("m")
        .metric_stat(stat.build())
        .build();
    let out = cloudwatch
        .get_metric_data()
        .metric_data_queries(query)
        .start_time(DateTime::from_secs(now - 3_000))
        .end_time(DateTime::from_secs(now + 600))
        .send()
        .await
        .unwrap();
    out.metric_data_results()[0].values().iter().sum()
}
