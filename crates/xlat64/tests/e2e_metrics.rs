//! `[metrics] listen`: the counters at `GET /metrics` in Prometheus /
//! OpenMetrics text, scraped after traffic and checked line by line: every
//! family has HELP and TYPE, the text ends with `# EOF`, and every value
//! equals what `stats --json` says.

mod common;

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use xlat64_lab::{server_via_nat64, Lab};

/// `GET /metrics` from the gateway namespace.
fn scrape(lab: &Lab) -> String {
    lab.in_netns(lab.gateway(), || {
        let mut s = TcpStream::connect("127.0.0.1:9164")?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    })
    .expect("scrape")
}

/// The metric families `body` holds, as the OpenMetrics parser of the
/// Prometheus Python client reads them (it refuses what breaks the format).
fn openmetrics_families(body: &str) -> Vec<String> {
    const PARSE: &str = "import sys\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\n\
        for f in parse(sys.stdin.read()): print(f.name)\n";
    let mut child = std::process::Command::new("/usr/bin/python3")
        .args(["-c", PARSE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 (apt install python3 python3-prometheus-client)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OpenMetrics parser refused the exposition (needs python3-prometheus-client): {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn metrics_match_stats_and_parse() {
    if !common::can_run("metrics", &["ping"]) {
        return;
    }
    let lab = Lab::create("metrics").expect("lab");
    let config = lab.gateway_config().replacen(
        "[control]",
        "[metrics]\nlisten = \"127.0.0.1:9164\"\n\n[control]",
        1,
    );
    let gateway = lab
        .start_gateway_with(&common::exe(), &config)
        .expect("start the gateway");
    let server = server_via_nat64().to_string();
    let out = lab
        .run_in(
            lab.client(),
            &["ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", &server],
        )
        .expect("ping");
    assert!(out.status.success(), "{out:?}");
    // Stray packets (the namespaces' own router solicitations and MLD
    // reports) may be counted while the scrape is taken: every value must
    // lie between `stats` taken just before and just after it.
    let stats_now = || -> BTreeMap<String, u64> {
        let out = gateway.cli(&["stats", "--json"]).expect("stats");
        let map: BTreeMap<String, Value> = serde_json::from_slice(&out.stdout).expect("JSON");
        map.into_iter()
            .map(|(k, v)| (k, v.as_u64().unwrap()))
            .collect()
    };
    let before = stats_now();
    let response = scrape(&lab);
    let after = stats_now();
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("openmetrics-text"), "{head}");
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    // An independent, strict OpenMetrics parser accepts it: the Python
    // client's (Debian's python3-prometheus-client, installed by .ci/run).
    let families = openmetrics_families(body);
    eprintln!("{} metric families: {}", families.len(), families.join(" "));
    for family in [
        "xlat64_drops",
        "xlat64_nat64_sessions",
        "xlat64_pool4_bindings",
        "xlat64_worker_tun_rx_packets",
        "xlat64_dns64_cache_entries",
    ] {
        assert!(
            families.iter().any(|f| f == family),
            "{family} not in {families:?}"
        );
    }
    // Every sample belongs to a family with HELP and TYPE.
    let mut families = std::collections::BTreeSet::new();
    let mut samples: BTreeMap<String, u64> = BTreeMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            families.insert(rest.split_whitespace().next().unwrap().to_string());
        } else if line.starts_with('#') {
            continue;
        } else {
            let (name, value) = line.rsplit_once(' ').expect("name value");
            let value: u64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
            let family = name.split('{').next().unwrap().trim_end_matches("_total");
            assert!(families.contains(family), "{line}: no TYPE for {family}");
            assert!(
                body.contains(&format!("# HELP {family} ")),
                "no HELP for {family}"
            );
            samples.insert(name.to_string(), value);
        }
    }
    // The same values as `stats --json`.
    for (name, value) in &after {
        let low = before.get(name).copied().unwrap_or(0).min(*value);
        let high = before.get(name).copied().unwrap_or(0).max(*value);
        let sample = if let Some(reason) = name.strip_prefix("drop_") {
            format!("xlat64_drops_total{{reason=\"{reason}\"}}")
        } else if let Some((worker, what)) =
            name.strip_prefix("worker_").and_then(|r| r.split_once('_'))
        {
            match samples.contains_key(&format!("xlat64_worker_{what}{{worker=\"{worker}\"}}")) {
                true => format!("xlat64_worker_{what}{{worker=\"{worker}\"}}"),
                false => format!("xlat64_worker_{what}_total{{worker=\"{worker}\"}}"),
            }
        } else if let Some((n, what)) = name
            .strip_prefix("dns64_upstream_")
            .and_then(|r| r.split_once('_'))
            .filter(|(n, _)| n.parse::<usize>().is_ok())
        {
            // A gauge per upstream, labelled with its place and address.
            let start = format!("xlat64_dns64_upstream_{what}{{upstream=\"{n}\",address=\"");
            samples
                .keys()
                .find(|k| k.starts_with(&start))
                .cloned()
                .unwrap_or(start)
        } else if samples.contains_key(&format!("xlat64_{name}")) {
            format!("xlat64_{name}")
        } else {
            format!("xlat64_{name}_total")
        };
        let got = samples.get(&sample).copied();
        assert!(
            got.is_some_and(|v| (low..=high).contains(&v)),
            "{name} as {sample}: {got:?}, stats {low}..={high}"
        );
    }
    assert!(samples["xlat64_translated_v6_to_v4_packets_total"] >= 3);
    // The ping's binding shows in the pool4 use.
    let icmp = "xlat64_pool4_bindings{address=\"192.0.2.1\",protocol=\"icmp\"}";
    assert_eq!(samples.get(icmp), Some(&1), "{body}");
    // Anything else is not found.
    let other = lab
        .in_netns(lab.gateway(), || {
            let mut s = TcpStream::connect("127.0.0.1:9164")?;
            s.write_all(b"GET / HTTP/1.1\r\n\r\n")?;
            let mut text = String::new();
            s.read_to_string(&mut text)?;
            Ok(text)
        })
        .expect("GET /");
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
}
