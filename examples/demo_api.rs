//! A small local API for the quickstart: it serves changing weather readings and a station
//! list on 127.0.0.1, so a newcomer can watch siphon poll an HTTP API with no internet access.
//!
//! `cargo run --example demo_api -- [PORT]` (default 8099).

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::extract::Query;
use axum::routing::get;
use serde_json::{Value, json};

#[derive(serde::Deserialize)]
struct WeatherQuery {
    locations: Option<String>,
    units: Option<String>,
}

/// A deterministic wobble so readings change from poll to poll.
fn wobble(seed: u64, now: u64) -> f64 {
    let x = (seed.wrapping_mul(6364136223846793005).wrapping_add(now)) % 1000;
    x as f64 / 100.0
}

async fn weather(Query(q): Query<WeatherQuery>) -> Json<Value> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let timestamp = chrono_like_rfc3339(secs);
    let locations = q.locations.unwrap_or_else(|| "NYC,LA,CHI".into());
    let imperial = q.units.as_deref() == Some("imperial");
    let data: Vec<Value> = locations
        .split(',')
        .enumerate()
        .map(|(i, loc)| {
            let conditions = ["sunny", "cloudy", "rain", "windy"][((secs / 10) as usize + i) % 4];
            let celsius = 12.0 + i as f64 * 4.0 + wobble(i as u64 + 1, secs);
            let temperature = if imperial {
                celsius * 9.0 / 5.0 + 32.0
            } else {
                celsius
            };
            json!({
                "location": loc.trim(),
                "timestamp": timestamp,
                "temperature": (temperature * 10.0).round() / 10.0,
                "humidity": 40 + (secs + i as u64 * 7) % 30,
                "conditions": conditions,
            })
        })
        .collect();
    Json(json!({ "data": data, "meta": { "generated_at": timestamp } }))
}

async fn stations() -> Json<Value> {
    Json(json!([
        {"id": "NYC", "name": "Central Park", "elevation_m": 42},
        {"id": "LA", "name": "Downtown USC", "elevation_m": 70},
        {"id": "CHI", "name": "O'Hare", "elevation_m": 205}
    ]))
}

/// RFC 3339 in UTC from Unix seconds, without pulling a date crate into the example.
fn chrono_like_rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8099);
    let app = Router::new()
        .route("/v1/weather", get(weather))
        .route("/v1/stations", get(stations));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the demo API port");
    eprintln!("demo API on http://127.0.0.1:{port} (/v1/weather, /v1/stations)");
    axum::serve(listener, app)
        .await
        .expect("serve the demo API");
}
