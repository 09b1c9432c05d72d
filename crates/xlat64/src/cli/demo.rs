//! `xlat64 demo`: builds a throwaway [`lab`](xlat64_lab), resolves a name
//! that has only an A record through DNS64 and fetches a page through NAT64,
//! printing each step, then removes the lab.
//!
//! It needs nothing but iproute2 and this binary: the authoritative DNS
//! server and the HTTP server of the IPv4-only server, and the DNS and HTTP
//! clients of the IPv6-only client, are threads of this process whose
//! sockets were created inside the respective namespace.

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use xlat64_lab::{self as lab, Gateway, Lab, GATEWAY_V6, NAT64_PREFIX, POOL4, SERVER_V4, TUN};

const STEPS: usize = 5;
/// The name the demo resolves; it has an A record and no AAAA.
const NAME: &str = "www.demo.test.";
const ZONE: &str = "demo.test.";
const PAGE: &str = "<!doctype html>\n<title>xlat64 demo</title>\n<p>Hello from an IPv4-only server, reached over IPv6 through xlat64.</p>\n";
/// Poll interval of the server threads' stop flag.
const TICK: Duration = Duration::from_millis(50);
const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the demo stopped.
struct Failure {
    step: usize,
    what: &'static str,
    detail: String,
}

fn fail(step: usize, what: &'static str) -> impl FnOnce(io::Error) -> Failure {
    move |e| Failure {
        step,
        what,
        detail: e.to_string(),
    }
}

/// Runs the demo; returns the process exit code.
pub fn run_demo() -> i32 {
    match demo() {
        Ok(()) => {
            println!("demo finished: every step worked");
            0
        }
        Err(f) => {
            eprintln!(
                "error: demo failed at step [{}/{STEPS}] ({}): {}",
                f.step, f.what, f.detail
            );
            1
        }
    }
}

fn demo() -> Result<(), Failure> {
    if !crate::sys::process::is_root() {
        return Err(Failure {
            step: 1,
            what: "build the lab",
            detail: "creating network namespaces needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)"
                .into(),
        });
    }
    let exe = std::env::current_exe().map_err(fail(2, "start the gateway"))?;

    let lab = Lab::create("demo").map_err(|e| Failure {
        step: 1,
        what: "build the lab",
        detail: format!("{e} (is iproute2 installed?)"),
    })?;
    let servers = Servers::start(&lab).map_err(fail(1, "start the DNS and HTTP servers"))?;
    println!("[1/{STEPS}] lab built: {}", lab.describe());
    println!("      server runs an authoritative DNS server for {ZONE} ({NAME} A {SERVER_V4}, no AAAA) and HTTP on port 80");

    let result = with_gateway(&lab, &exe, &servers);
    servers.stop();
    let removed = lab.remove();
    result?;
    removed.map_err(|e| Failure {
        step: STEPS,
        what: "remove the lab",
        detail: e.to_string(),
    })?;
    println!("lab removed");
    Ok(())
}

fn with_gateway(lab: &Lab, exe: &std::path::Path, servers: &Servers) -> Result<(), Failure> {
    let mut gateway = lab
        .start_gateway(exe)
        .map_err(fail(2, "start the gateway"))?;
    println!(
        "[2/{STEPS}] gateway started: `xlat64 run` (pid {}) in {}: DNS64 on [{GATEWAY_V6}]:53 forwarding to {SERVER_V4}:53, NAT64 {NAT64_PREFIX} <-> {POOL4} on TUN {TUN}",
        gateway.pid(),
        lab.gateway()
    );
    let steps = client_steps(lab, &gateway, servers);
    let stopped = gateway.stop();
    if let Err(mut f) = steps {
        let log = gateway.log();
        if !log.trim().is_empty() {
            f.detail.push_str("\ngateway log:\n");
            f.detail.push_str(&log);
        }
        return Err(f);
    }
    match stopped {
        Ok(status) if status.success() => {
            println!(
                "      gateway stopped on SIGTERM ({})",
                lab::describe_status(status)
            );
            Ok(())
        }
        Ok(status) => Err(Failure {
            step: STEPS,
            what: "stop the gateway",
            detail: format!(
                "xlat64 run ended with {} after SIGTERM; log:\n{}",
                lab::describe_status(status),
                gateway.log()
            ),
        }),
        Err(e) => Err(Failure {
            step: STEPS,
            what: "stop the gateway",
            detail: e.to_string(),
        }),
    }
}

fn client_steps(lab: &Lab, gateway: &Gateway, servers: &Servers) -> Result<(), Failure> {
    // Step 3: DNS64.
    let dns64 = SocketAddr::from((GATEWAY_V6, 53));
    let answer = lab
        .in_netns(lab.client(), || query_aaaa(dns64, NAME))
        .map_err(fail(3, "resolve through DNS64"))?;
    let synthesized = answer.first().copied().ok_or_else(|| Failure {
        step: 3,
        what: "resolve through DNS64",
        detail: format!("DNS64 at {GATEWAY_V6} returned no AAAA for {NAME}"),
    })?;
    let embedded = lab::extract_v4(&synthesized);
    if embedded != Some(SERVER_V4) {
        return Err(Failure {
            step: 3,
            what: "resolve through DNS64",
            detail: format!("{synthesized} does not embed {SERVER_V4} in {NAT64_PREFIX}"),
        });
    }
    println!(
        "[3/{STEPS}] client asked AAAA {} from DNS64 at {GATEWAY_V6} -> {synthesized} (synthesized from A {SERVER_V4})",
        NAME.trim_end_matches('.')
    );

    // Step 4: NAT64.
    let target = SocketAddr::from((synthesized, 80));
    let response = lab
        .in_netns(lab.client(), || http_get(target))
        .map_err(fail(4, "fetch the page through NAT64"))?;
    let status = response.lines().next().unwrap_or("").to_string();
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    if !status.contains(" 200 ") || body != PAGE {
        return Err(Failure {
            step: 4,
            what: "fetch the page through NAT64",
            detail: format!(
                "unexpected response from {target}: {status:?}, {} bytes",
                body.len()
            ),
        });
    }
    let peers = servers
        .http_peers
        .lock()
        .map(|p| p.clone())
        .unwrap_or_default();
    let Some(peer) = peers.last() else {
        return Err(Failure {
            step: 4,
            what: "fetch the page through NAT64",
            detail: "the server saw no request".into(),
        });
    };
    if peer.ip() != IpAddr::V4(POOL4) {
        return Err(Failure {
            step: 4,
            what: "fetch the page through NAT64",
            detail: format!("the server saw the request from {peer}, expected {POOL4}"),
        });
    }
    println!(
        "[4/{STEPS}] client fetched http://[{synthesized}]/ -> 200, {} bytes; server saw the request from {peer}",
        body.len()
    );

    // Step 5: the session table.
    let out = gateway
        .cli(&["sessions"])
        .map_err(fail(5, "show the session table"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(Failure {
            step: 5,
            what: "show the session table",
            detail: format!(
                "xlat64 sessions: {}: {}",
                lab::describe_status(out.status),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    println!("[5/{STEPS}] session table (`xlat64 sessions`):");
    for line in text.lines() {
        println!("      {line}");
    }
    Ok(())
}

/// Asks `server` for AAAA `name` over UDP (3 tries); returns the addresses.
fn query_aaaa(server: SocketAddr, name: &str) -> io::Result<Vec<Ipv6Addr>> {
    let socket = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0))?;
    socket.set_read_timeout(Some(Duration::from_secs(2)))?;
    let id = (std::process::id() as u16) ^ 0x5a5a;
    let mut query = Message::new();
    query
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(
            Name::from_ascii(name).map_err(io::Error::other)?,
            RecordType::AAAA,
        ));
    let bytes = query.to_vec().map_err(io::Error::other)?;
    let mut buf = [0u8; 4096];
    let mut last = io::Error::new(io::ErrorKind::TimedOut, format!("no answer from {server}"));
    for _ in 0..3 {
        socket.send_to(&bytes, server)?;
        match socket.recv_from(&mut buf) {
            Ok((n, from)) if from == server => {
                let response = Message::from_vec(&buf[..n]).map_err(io::Error::other)?;
                if response.id() != id {
                    continue;
                }
                if response.response_code() != ResponseCode::NoError {
                    return Err(io::Error::other(format!(
                        "{server} answered {}",
                        response.response_code()
                    )));
                }
                return Ok(response
                    .answers()
                    .iter()
                    .filter_map(|r| match r.data() {
                        RData::AAAA(a) => Some(a.0),
                        _ => None,
                    })
                    .collect());
            }
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                last = io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer from {server} within 2 s (3 tries)"),
                );
            }
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// `GET /` over HTTP/1.0; returns the whole response.
fn http_get(target: SocketAddr) -> io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&target, IO_TIMEOUT)
        .map_err(|e| io::Error::new(e.kind(), format!("connect to {target}: {e}")))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: www.demo.test\r\nUser-Agent: xlat64-demo\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

/// The server namespace's DNS and HTTP servers.
struct Servers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    http_peers: Arc<Mutex<Vec<SocketAddr>>>,
}

impl Servers {
    fn start(lab: &Lab) -> io::Result<Servers> {
        let (dns, http) = lab.in_netns(lab.server(), || {
            let dns = UdpSocket::bind((SERVER_V4, 53))?;
            let http = TcpListener::bind((SERVER_V4, 80))?;
            Ok((dns, http))
        })?;
        dns.set_read_timeout(Some(TICK))?;
        http.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let http_peers = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        let flag = stop.clone();
        threads.push(thread::spawn(move || serve_dns(&dns, &flag)));
        let (flag, peers) = (stop.clone(), http_peers.clone());
        threads.push(thread::spawn(move || serve_http(&http, &flag, &peers)));
        Ok(Servers {
            stop,
            threads,
            http_peers,
        })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn serve_dns(socket: &UdpSocket, stop: &AtomicBool) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Ok(query) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if let Some(bytes) = answer(&query).and_then(|m| m.to_vec().ok()) {
            let _ = socket.send_to(&bytes, from);
        }
    }
}

/// The authoritative answer for the demo zone: `www` has an A record only;
/// other names are NXDOMAIN; AAAA is NODATA with the SOA in the authority
/// section ([RFC 2308 §2.2](https://www.rfc-editor.org/rfc/rfc2308#section-2.2)).
fn answer(query: &Message) -> Option<Message> {
    if query.message_type() != MessageType::Query || query.op_code() != OpCode::Query {
        return None;
    }
    let q = query.queries().first()?;
    let zone = Name::from_ascii(ZONE).ok()?;
    let www = Name::from_ascii(NAME).ok()?;
    let mut response = Message::new();
    response
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(query.recursion_desired())
        .add_query(q.clone());
    if !zone.zone_of(q.name()) {
        response.set_response_code(ResponseCode::Refused);
        return Some(response);
    }
    response.set_authoritative(true);
    let soa = Record::from_rdata(
        zone.clone(),
        60,
        RData::SOA(SOA::new(
            Name::from_ascii("ns.demo.test.").ok()?,
            Name::from_ascii("hostmaster.demo.test.").ok()?,
            1,
            3600,
            600,
            86400,
            60,
        )),
    );
    let name = q.name();
    if *name == www && q.query_type() == RecordType::A {
        response.add_answer(Record::from_rdata(www, 300, RData::A(A(SERVER_V4))));
    } else if *name == zone && q.query_type() == RecordType::SOA {
        response.add_answer(soa);
    } else if *name == www || *name == zone {
        response.add_name_server(soa);
    } else {
        response
            .set_response_code(ResponseCode::NXDomain)
            .add_name_server(soa);
    }
    Some(response)
}

fn serve_http(listener: &TcpListener, stop: &AtomicBool, peers: &Mutex<Vec<SocketAddr>>) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Ok(mut p) = peers.lock() {
                    p.push(peer);
                }
                let _ = serve_one(stream);
            }
            Err(_) => thread::sleep(TICK),
        }
    }
}

fn serve_one(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && Instant::now() < deadline {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let response = format!(
        "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{PAGE}",
        PAGE.len()
    );
    stream.write_all(response.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(name: &str, qtype: RecordType) -> Message {
        let mut q = Message::new();
        q.set_id(7)
            .add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        let bytes = answer(&q).unwrap().to_vec().unwrap();
        Message::from_vec(&bytes).unwrap()
    }

    #[test]
    fn demo_zone_has_only_an_a_record() {
        let a = ask(NAME, RecordType::A);
        assert_eq!(a.response_code(), ResponseCode::NoError);
        assert_eq!(a.answers().len(), 1);
        assert_eq!(a.answers()[0].data(), &RData::A(A(SERVER_V4)));

        let aaaa = ask(NAME, RecordType::AAAA);
        assert_eq!(aaaa.response_code(), ResponseCode::NoError);
        assert!(aaaa.answers().is_empty());
        assert_eq!(aaaa.name_servers()[0].record_type(), RecordType::SOA);

        let nx = ask("nosuch.demo.test.", RecordType::AAAA);
        assert_eq!(nx.response_code(), ResponseCode::NXDomain);
        assert_eq!(
            ask("example.org.", RecordType::A).response_code(),
            ResponseCode::Refused
        );
    }
}
