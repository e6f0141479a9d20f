//! Driving a loopback HTTP server with `wrk` (the load generator of the request bench and
//! of `scripts/load.sh`), and sampling the machine with `perf` meanwhile.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// One request of a rotation: a path and its extra headers.
#[derive(Debug, Clone)]
pub struct Rotated {
    /// Path and query.
    pub path: String,
    /// Extra headers (name, value), e.g. a session cookie.
    pub headers: Vec<(String, String)>,
}

/// wrk's Lua script: each request is the next of `requests` (round robin), and the run's
/// results are printed on one machine-readable line that [`wrk`] reads.
pub fn lua_script(requests: &[Rotated]) -> String {
    let mut s = String::from("local reqs = {\n");
    for r in requests {
        let mut headers = String::new();
        for (name, value) in &r.headers {
            let _ = write!(headers, "[{name:?}] = {value:?}, ");
        }
        let _ = writeln!(s, "  {{ {:?}, {{ {headers}}} }},", r.path);
    }
    s.push_str(
        r#"}
local i = 0
request = function()
  i = i % #reqs + 1
  return wrk.format("GET", reqs[i][1], reqs[i][2])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %d %d\n", summary.requests,
    summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.mean))
end
"#,
    );
    s
}

/// What one wrk run measured.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// Completed requests per second.
    pub rps: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th percentile latency, µs.
    pub p99_us: f64,
    /// 99.9th percentile latency, µs.
    pub p999_us: f64,
    /// Mean latency, µs.
    pub mean_us: f64,
}

/// The shape of a wrk run.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// wrk threads.
    pub threads: u32,
    /// Open connections.
    pub connections: u32,
    /// Duration in seconds.
    pub seconds: u32,
}

/// Runs wrk against `http://127.0.0.1:{port}` with `script` (from [`lua_script`]).
///
/// # Panics
/// When wrk is missing, prints no result, or saw a socket error or a non-2xx answer: a
/// bench whose requests fail measures nothing.
pub fn wrk(load: Load, port: u16, script: &Path) -> Run {
    let out = Command::new("wrk")
        .arg(format!("-t{}", load.threads))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", load.seconds))
        .args(["--timeout", "5s", "-s"])
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run wrk (scripts/setup.sh installs it): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("wrk printed no result: {stdout}"))
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(f64::NAN))
        .collect();
    assert!(v.len() == 8, "wrk's result line is malformed: {stdout}");
    assert!(
        v[2] == 0.0 && v[3] == 0.0,
        "wrk saw socket errors or non-2xx answers: {stdout}"
    );
    Run {
        rps: v[0] / (v[1] / 1e6),
        p50_us: v[4],
        p99_us: v[5],
        p999_us: v[6],
        mean_us: v[7],
    }
}

/// Starts `perf record -a -g` for `seconds` after a one-second delay (so the sample skips
/// the ramp-up), writing `dir/{name}.data`. `None` when perf cannot be started.
pub fn perf_start(dir: &Path, name: &str, seconds: u32) -> Option<(Child, PathBuf)> {
    std::fs::create_dir_all(dir).ok()?;
    let data = dir.join(format!("{name}.data"));
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "sleep 1; exec perf record -q -F 499 -a -g -o '{}' -- sleep {seconds}",
            data.display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    Some((child, data))
}

/// Writes perf's summaries next to `data`: CPU share by thread name (`.comm`), by thread
/// name and binary (`.dso`), and by symbol (`.sym`).
pub fn perf_report(data: &Path) {
    for (sort, ext) in [("comm", "comm"), ("comm,dso", "dso"), ("comm,sym", "sym")] {
        let out = Command::new("perf")
            .args(["report", "--stdio", "--no-children", "-g", "none"])
            .args(["--percent-limit", "0.5", "--sort", sort, "-i"])
            .arg(data)
            .output();
        if let Ok(out) = out {
            let _ = std::fs::write(data.with_extension(ext), &out.stdout);
        }
    }
}

/// The median (upper median for an even count); NaN for none.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_rotates_over_the_requests_with_their_headers() {
        let s = lua_script(&[
            Rotated {
                path: "/a".into(),
                headers: vec![],
            },
            Rotated {
                path: "/b".into(),
                headers: vec![("Cookie".into(), "k=v".into())],
            },
        ]);
        assert!(s.contains("{ \"/a\", { } },"), "{s}");
        assert!(s.contains("{ \"/b\", { [\"Cookie\"] = \"k=v\", } },"));
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    }
}
