//! The number-crunching half of `benches/run.sh`:
//!
//! - `bench-stats bodies DIR`: writes the gRPC request bodies the load generators send
//!   (`empty.bin`: an `Empty`; `unary.bin`: a `SimpleRequest` with a 100-byte payload asking for a
//!   100-byte reply; each with its 5-byte gRPC frame header) and `echo.bin` (100 bytes, the HTTP
//!   echo body).
//! - `bench-stats latency FILE`: the request count, mean, p50 and p99 (microseconds) of an
//!   `h2load --log-file` (third column: request time in us).
//! - `bench-stats table RESULTS`: the Markdown table of a results file, one line per run with
//!   tab-separated `scenario server round req_per_s mean_us p99_us cpu_s requests`; medians over
//!   rounds, and a ratio row OmniRelay / peer per scenario.
//! - `bench-stats allocs RESULTS`: the Markdown table of allocation runs, one line per run with
//!   `server call calls allocs reallocs bytes` (deltas over `calls` calls).
//! - `bench-stats dhat FILE CALLS [TOP]`: the allocation sites of a `valgrind --tool=dhat` output
//!   taken over CALLS calls, heaviest first: blocks and bytes per call, each site named by its
//!   first frames outside the allocator and the standard library.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use omnirelay_benches::omni_pb::{Empty, Payload, SimpleRequest};
use prost::Message;

/// Request and reply payload size of the `UnaryCall` rows and the HTTP echo body size.
const PAYLOAD: usize = 100;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["bodies", dir] => bodies(Path::new(dir)),
        ["latency", file] => latency(Path::new(file)),
        ["table", file] => table(Path::new(file)),
        ["allocs", file] => allocs(Path::new(file)),
        ["dhat", file, calls] => dhat(Path::new(file), calls, "30"),
        ["dhat", file, calls, top] => dhat(Path::new(file), calls, top),
        _ => Err(
            "usage: bench-stats bodies DIR | latency H2LOAD_LOG | table RESULTS | allocs RESULTS"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench-stats: {err}");
            ExitCode::FAILURE
        }
    }
}

fn grpc_frame(message: &impl Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut framed = Vec::with_capacity(5 + body.len());
    framed.push(0); // not compressed
    framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
    framed.extend_from_slice(&body);
    framed
}

fn bodies(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let unary = SimpleRequest {
        response_size: PAYLOAD as i32,
        payload: Some(Payload {
            r#type: 0,
            body: vec![b'x'; PAYLOAD],
        }),
        ..Default::default()
    };
    let files: [(&str, Vec<u8>); 3] = [
        ("empty.bin", grpc_frame(&Empty {})),
        ("unary.bin", grpc_frame(&unary)),
        ("echo.bin", vec![b'x'; PAYLOAD]),
    ];
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The value at quantile `q` (nearest rank) of sorted `values`.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn latency(path: &Path) -> Result<(), String> {
    let mut times: Vec<f64> = read(path)?
        .lines()
        .filter_map(|line| line.split('\t').nth(2)?.trim().parse().ok())
        .collect();
    if times.is_empty() {
        return Err(format!("{}: no request times", path.display()));
    }
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!(
        "{} {:.1} {:.1} {:.1}",
        times.len(),
        mean,
        quantile(&times, 0.50),
        quantile(&times, 0.99)
    );
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[derive(Default)]
struct Runs {
    rps: Vec<f64>,
    mean_us: Vec<f64>,
    p99_us: Vec<f64>,
    cpu_per_100k: Vec<f64>,
}

struct Summary {
    rps: f64,
    mean_us: f64,
    p99_us: f64,
    cpu_per_100k: f64,
    n: usize,
    rps_min: f64,
    rps_max: f64,
}

impl Runs {
    fn summary(&self) -> Summary {
        let min = self.rps.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.rps.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Summary {
            rps: median(self.rps.clone()),
            mean_us: median(self.mean_us.clone()),
            p99_us: median(self.p99_us.clone()),
            cpu_per_100k: median(self.cpu_per_100k.clone()),
            n: self.rps.len(),
            rps_min: min,
            rps_max: max,
        }
    }
}

fn fmt_us(us: f64) -> String {
    if !us.is_finite() {
        "-".into()
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} us")
    }
}

fn fmt_rps(rps: f64) -> String {
    if !rps.is_finite() {
        return "-".into();
    }
    let n = rps.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ratio(ours: f64, peer: f64) -> String {
    if ours.is_finite() && peer.is_finite() && peer > 0.0 {
        format!("{:.2}x", ours / peer)
    } else {
        "-".into()
    }
}

fn table(path: &Path) -> Result<(), String> {
    let text = read(path)?;
    let mut order: Vec<String> = Vec::new();
    let mut runs: BTreeMap<(String, String), Runs> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split('\t').collect();
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if f.len() < 8 {
            return Err(format!("{}:{}: expected 8 fields", path.display(), i + 1));
        }
        let num = |s: &str| s.trim().parse::<f64>().unwrap_or(f64::NAN);
        let scenario = f[0].to_owned();
        if !order.contains(&scenario) {
            order.push(scenario.clone());
        }
        let r = runs.entry((scenario, f[1].to_owned())).or_default();
        r.rps.push(num(f[3]));
        r.mean_us.push(num(f[4]));
        r.p99_us.push(num(f[5]));
        let requests = num(f[7]);
        r.cpu_per_100k.push(num(f[6]) / requests * 100_000.0);
    }
    println!(
        "| scenario | server | req/s (median) | req/s range | mean | p99 | CPU s / 100k calls | rounds |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for scenario in &order {
        let servers: Vec<&String> = runs
            .keys()
            .filter(|(s, _)| s == scenario)
            .map(|(_, srv)| srv)
            .collect();
        // OmniRelay first, then its peer.
        let mut servers = servers;
        servers.sort_by_key(|s| (!s.starts_with("omnirelay"), s.to_string()));
        let mut summaries = Vec::new();
        for server in &servers {
            let s = runs[&(scenario.clone(), server.to_string())].summary();
            println!(
                "| {scenario} | {server} | {} | {}-{} | {} | {} | {:.2} | {} |",
                fmt_rps(s.rps),
                fmt_rps(s.rps_min),
                fmt_rps(s.rps_max),
                fmt_us(s.mean_us),
                fmt_us(s.p99_us),
                s.cpu_per_100k,
                s.n
            );
            summaries.push(s);
        }
        // One ratio row per other server: the peer, then (HTTP) the hyper floor.
        if servers.first().is_some_and(|s| s.starts_with("omnirelay")) {
            let ours = &summaries[0];
            for (other, peer) in servers.iter().zip(&summaries).skip(1) {
                ratio_row(scenario, &runs, servers[0], other, ours, peer);
            }
        }
    }
    Ok(())
}

/// The row `OmniRelay / OTHER` of a scenario: the ratio of the medians, and the spread and
/// median of the per-round ratios.
fn ratio_row(
    scenario: &str,
    runs: &BTreeMap<(String, String), Runs>,
    ours_name: &str,
    other: &str,
    ours: &Summary,
    peer: &Summary,
) {
    // The two ran back to back in each round: their ratio per round cancels the machine's
    // slower drifts better than the ratio of the medians.
    let per_round: Vec<f64> = runs[&(scenario.to_owned(), ours_name.to_owned())]
        .rps
        .iter()
        .zip(&runs[&(scenario.to_owned(), other.to_owned())].rps)
        .map(|(o, p)| o / p)
        .filter(|r| r.is_finite())
        .collect();
    let spread = if per_round.is_empty() {
        String::new()
    } else {
        let lo = per_round.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = per_round.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!(
            "per round {lo:.2}x-{hi:.2}x, median {:.2}x",
            median(per_round.clone())
        )
    };
    let name = if other == "hyper" {
        "hyper floor"
    } else {
        other
    };
    println!(
        "| {scenario} | **OmniRelay / {name}** | **{}** | {spread} | {} | {} | {} | |",
        ratio(ours.rps, peer.rps),
        ratio(ours.mean_us, peer.mean_us),
        ratio(ours.p99_us, peer.p99_us),
        ratio(ours.cpu_per_100k, peer.cpu_per_100k),
    );
}

fn allocs(path: &Path) -> Result<(), String> {
    let text = read(path)?;
    println!(
        "| server | call | calls | allocs / call | bytes allocated / call | reallocs / call |"
    );
    println!("|---|---|---|---|---|---|");
    for line in text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 6 {
            return Err(format!("{}: expected 6 fields in {line:?}", path.display()));
        }
        let num = |s: &str| s.trim().parse::<f64>().unwrap_or(f64::NAN);
        let calls = num(f[2]);
        println!(
            "| {} | {} | {} | {:.2} | {:.0} B | {:.3} |",
            f[0],
            f[1],
            f[2],
            num(f[3]) / calls,
            num(f[5]) / calls,
            num(f[4]) / calls
        );
    }
    Ok(())
}

/// Frames that only say "an allocation happened": the allocator, `alloc`/`core`/`std`
/// plumbing (`Vec` growth, `Box::new`, `Arc::new`, `to_owned`, ...), and valgrind's replacement
/// functions. Frames read `0xADDR: function (file:line)`; with line tables only, standard
/// library frames sometimes carry a bare file name, so both the function and the file are
/// looked at.
fn is_plumbing(frame: &str) -> bool {
    let rest = frame.split_once(": ").map_or(frame, |(_, f)| f);
    let (function, file) = match rest.rsplit_once(" (") {
        Some((f, loc)) => (f, loc.trim_end_matches(')')),
        None => (rest, ""),
    };
    if file.starts_with("in ") || file.starts_with("library/") || file.contains("/library/") {
        return true;
    }
    let base = file.rsplit('/').next().unwrap_or(file);
    let base = base.split(':').next().unwrap_or(base);
    const STD_FILES: [&str; 14] = [
        "alloc.rs",
        "boxed.rs",
        "raw_vec.rs",
        "slice.rs",
        "str.rs",
        "string.rs",
        "spec_extend.rs",
        "spec_from_elem.rs",
        "spec_from_iter.rs",
        "spec_from_iter_nested.rs",
        "arc.rs",
        "unix.rs",
        "function.rs",
        "borrow.rs",
    ];
    const STD_WORDS: [&str; 12] = [
        "alloc::",
        "RawVec",
        "reserve",
        "finish_grow",
        "grow_amortized",
        "with_capacity",
        "extend_from_slice",
        "append_elements",
        "to_vec",
        "UnknownInlinedFun",
        "do_reserve_and_handle",
        "malloc",
    ];
    STD_FILES.contains(&base)
        || (base == "mod.rs" && STD_WORDS.iter().any(|w| function.contains(w)))
        || function.starts_with("alloc") && base == "mod.rs"
        || STD_WORDS[9..].iter().any(|w| function.contains(w))
        || function.starts_with("__rust")
        || function.starts_with("__rdl")
}

fn dhat(path: &Path, calls: &str, top: &str) -> Result<(), String> {
    let calls: f64 = calls
        .parse()
        .map_err(|_| format!("bad call count {calls:?}"))?;
    let top: usize = top.parse().map_err(|_| format!("bad count {top:?}"))?;
    let json: serde_json::Value =
        serde_json::from_str(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))?;
    let frames: Vec<&str> = json["ftbl"]
        .as_array()
        .ok_or("no ftbl")?
        .iter()
        .map(|f| f.as_str().unwrap_or("?"))
        .collect();
    let mut sites: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let (mut blocks, mut bytes) = (0.0, 0.0);
    for pp in json["pps"].as_array().ok_or("no pps")? {
        let tbk = pp["tbk"].as_f64().unwrap_or(0.0);
        let tb = pp["tb"].as_f64().unwrap_or(0.0);
        blocks += tbk;
        bytes += tb;
        let stack: Vec<&str> = pp["fs"]
            .as_array()
            .map(|fs| {
                fs.iter()
                    .filter_map(|i| frames.get(i.as_u64()? as usize).copied())
                    .collect()
            })
            .unwrap_or_default();
        // The site: the first four frames past the allocator, innermost first.
        let site: Vec<String> = stack
            .iter()
            .skip_while(|f| is_plumbing(f))
            .take(4)
            .map(|f| f.split_once(": ").map_or(*f, |(_, g)| g).to_owned())
            .collect();
        let entry = sites.entry(site.join("\n    < ")).or_default();
        entry.0 += tbk;
        entry.1 += tb;
    }
    let mut sorted: Vec<(String, (f64, f64))> = sites.into_iter().collect();
    sorted.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
    println!(
        "total over the run: {:.2} blocks and {:.0} bytes per call ({} calls)",
        blocks / calls,
        bytes / calls,
        calls
    );
    for (site, (tbk, tb)) in sorted.into_iter().take(top) {
        println!(
            "{:7.2} blocks/call {:8.0} B/call  {site}",
            tbk / calls,
            tb / calls
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 0.50), 50.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
    }

    #[test]
    fn medians_skip_missing_values() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, f64::NAN, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }

    #[test]
    fn formats_rates_and_times() {
        assert_eq!(fmt_rps(1234567.4), "1,234,567");
        assert_eq!(fmt_rps(999.0), "999");
        assert_eq!(fmt_us(1520.0), "1.52 ms");
        assert_eq!(fmt_us(78.0), "78 us");
        assert_eq!(ratio(2.0, 4.0), "0.50x");
    }

    #[test]
    fn grpc_frames_carry_the_length() {
        assert_eq!(grpc_frame(&Empty {}), vec![0, 0, 0, 0, 0]);
    }

    #[test]
    fn allocator_frames_are_plumbing() {
        assert!(is_plumbing(
            "0x1: malloc (in /usr/libexec/valgrind/vgpreload_dhat-amd64-linux.so)"
        ));
        assert!(is_plumbing("0x1: alloc (alloc.rs:95)"));
        assert!(is_plumbing(
            "0x1: UnknownInlinedFun (library/alloc/src/raw_vec/mod.rs:464)"
        ));
        assert!(!is_plumbing(
            "0x1: omnirelay::procedure::procedure_from_grpc_path (mod.rs:168)"
        ));
        assert!(!is_plumbing(
            "0x1: bytes::bytes::Bytes::copy_from_slice (bytes.rs:348)"
        ));
    }
}
