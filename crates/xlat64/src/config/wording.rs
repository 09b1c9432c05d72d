//! Configuration errors in the operator's words: where in the file (line
//! and column for a syntax error), what was expected in plain terms rather
//! than Rust types (`expected u16`, `expected a sequence`), and an example
//! of a valid value for the key.

/// The line and column (both from 1) of byte `offset` of `text`.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

/// `message`, a parser's or serde's, in plain words, with an example of a
/// valid value for `key` when one is known.
pub(super) fn plain(key: &str, message: &str) -> String {
    let message = message.trim().replace('\n', ": ");
    let said = if let Some(rest) = message.strip_prefix("invalid type: ") {
        match rest.split_once(", expected ") {
            Some((got, want)) => format!("expected {}, found {}", wanted(want), found(got)),
            None => message.clone(),
        }
    } else if let Some(rest) = message.strip_prefix("invalid value: ") {
        match rest.split_once(", expected ") {
            Some((got, want)) => format!("expected {}, found {}", wanted(want), found(got)),
            None => message.clone(),
        }
    } else if message.contains("socket address syntax") {
        "this is not an address and port (ADDRESS:PORT, an IPv6 address in brackets: [ADDRESS]:PORT)"
            .to_string()
    } else if message.starts_with("invalid array: expected `]`") {
        "a list in brackets is not closed: `]` expected".to_string()
    } else if message == "invalid IP address syntax" {
        "this is not an IP address (with a prefix length where one is needed)".to_string()
    } else if message.starts_with("invalid IPv4 address syntax") {
        "this is not an IPv4 address (with a prefix length where one is needed)".to_string()
    } else if message.starts_with("invalid IPv6 address syntax") {
        "this is not an IPv6 address (with a prefix length where one is needed)".to_string()
    } else if let Some(rest) = message.strip_prefix("unknown field ") {
        match rest.split_once(", expected ") {
            Some((name, known)) => {
                let known = known.trim_start_matches("one of ").replace('`', "");
                format!("unknown key {name}; this table's keys are {known}")
            }
            None => format!("unknown key {rest}"),
        }
    } else if let Some(rest) = message.strip_prefix("unknown variant ") {
        match rest.split_once(", expected ") {
            Some((name, known)) => {
                let known = known.trim_start_matches("one of ").replace('`', "");
                format!("{name} is not one of {known}")
            }
            None => message.clone(),
        }
    } else {
        message.clone()
    };
    match example(key) {
        Some(example) if !said.contains("e.g.") => format!("{said} (e.g. {example})"),
        _ => said,
    }
}

/// What serde says a value should have been, in plain words.
fn wanted(want: &str) -> String {
    match want.trim() {
        "u8" => "a whole number from 0 to 255".into(),
        "u16" => "a whole number from 0 to 65535".into(),
        "u32" | "u64" | "usize" | "i64" | "an integer" => "a whole number".into(),
        "a boolean" | "bool" => "true or false".into(),
        "a sequence" => "a list in brackets, such as [\"...\"]".into(),
        "a string" => "a quoted string".into(),
        "a map" => "a table".into(),
        w if w.starts_with("struct ") => "a table".into(),
        w => w.to_string(),
    }
}

/// What serde says was found, in plain words.
fn found(got: &str) -> String {
    let got = got.trim();
    if let Some(s) = got.strip_prefix("string ") {
        format!("the text {s}")
    } else if let Some(n) = got.strip_prefix("integer ") {
        format!("the number {}", n.trim_matches('`'))
    } else if let Some(n) = got.strip_prefix("floating point ") {
        format!("the number {}", n.trim_matches('`'))
    } else {
        match got {
            "sequence" => "a list".into(),
            "map" => "a table".into(),
            g => g.to_string(),
        }
    }
}

/// An example of a valid value for `key` (list indexes ignored).
fn example(key: &str) -> Option<&'static str> {
    // `nat64.static[0].v4` is `nat64.static.v4`.
    let mut plain_key = String::with_capacity(key.len());
    let mut in_index = false;
    for c in key.chars() {
        match c {
            '[' => in_index = true,
            ']' => in_index = false,
            c if !in_index => plain_key.push(c),
            _ => {}
        }
    }
    let key = plain_key.as_str();
    let examples: &[(&str, &str)] = &[
        ("nat64.prefix", "prefix = \"64:ff9b::/96\""),
        (
            "nat64.pool4",
            "pool4 = [\"192.0.2.1\", \"203.0.113.1:61001-65535\"]",
        ),
        ("nat64.tun", "tun = \"nat64\""),
        ("nat64.mtu", "mtu = 1500"),
        ("nat64.offload", "offload = true"),
        ("nat64.mss-clamp", "mss-clamp = 1440"),
        ("nat64.lowest-ipv6-mtu", "lowest-ipv6-mtu = 1280"),
        ("nat64.filtering", "filtering = \"endpoint-independent\""),
        ("nat64.port-block", "port-block = 512"),
        ("nat64.port-reuse-delay", "port-reuse-delay = 120"),
        (
            "nat64.deny-destinations",
            "deny-destinations = [\"198.51.100.0/24\", \"203.0.113.5:25\"]",
        ),
        ("nat64.limits.max-sessions", "max-sessions = 1000000"),
        (
            "nat64.limits.max-sessions-per-client",
            "max-sessions-per-client = 10000",
        ),
        (
            "nat64.limits.max-ports-per-client",
            "max-ports-per-client = 5000",
        ),
        ("nat64.limits.client-prefix", "client-prefix = 64"),
        ("nat64.timeouts.udp", "udp = 300"),
        ("nat64.timeouts.icmp", "icmp = 60"),
        ("nat64.timeouts.tcp-established", "tcp-established = 7440"),
        ("nat64.timeouts.tcp-transitory", "tcp-transitory = 240"),
        ("nat64.static.v6", "v6 = \"[2001:db8:1::5]:80\""),
        ("nat64.static.v4", "v4 = \"192.0.2.1:8080\""),
        ("nat64.static.protocol", "protocol = \"tcp\""),
        (
            "nat64.deterministic.clients",
            "clients = \"2001:db8:100::/48\"",
        ),
        (
            "nat64.log.bindings",
            "bindings = \"/var/log/xlat64/bindings.jsonl\"",
        ),
        ("dns64.listen", "listen = [\"[::]:53\"]"),
        ("dns64.upstream", "upstream = [\"192.0.2.53:53\"]"),
        ("dns64.prefix", "prefix = \"64:ff9b::/96\""),
        ("dns64.allow", "allow = [\"2001:db8::/32\"]"),
        ("control.socket", "socket = \"/run/xlat64/control.sock\""),
        ("runtime.workers", "workers = 2"),
        ("metrics.listen", "listen = \"127.0.0.1:9164\""),
    ];
    examples.iter().find(|(k, _)| *k == key).map(|(_, e)| *e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_count_from_one() {
        let text = "[nat64]\nprefix = \"x\"\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 8), (2, 1));
        assert_eq!(line_col(text, 17), (2, 10));
    }

    #[test]
    fn serde_words_become_plain_words() {
        assert_eq!(
            plain("nat64.mtu", "invalid type: string \"big\", expected u16"),
            "expected a whole number from 0 to 65535, found the text \"big\" (e.g. mtu = 1500)"
        );
        assert_eq!(
            plain("nat64.pool4", "invalid type: string \"192.0.2.1\", expected a sequence"),
            "expected a list in brackets, such as [\"...\"], found the text \"192.0.2.1\" (e.g. pool4 = [\"192.0.2.1\", \"203.0.113.1:61001-65535\"])"
        );
        assert!(plain("nat64.prefix", "invalid IP address syntax").contains("64:ff9b::/96"));
        assert_eq!(
            plain(
                "nat64.offload",
                "invalid type: integer `1`, expected a boolean"
            ),
            "expected true or false, found the number 1 (e.g. offload = true)"
        );
    }
}
