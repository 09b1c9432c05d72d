//! The packet data path: one worker thread per TUN queue, each owning a
//! NAT64 shard outright ([`xlat64_nat::shard`]); the kernel steers every
//! packet to its owner's queue ([`steering`]). The control socket reaches
//! the workers through their mailboxes ([`mailbox`]) and reads their
//! counters ([`counters`]) without taking anything a worker needs.
//!
//! A worker that dies (an I/O error on its queue, the device deleted, a
//! panic) reports it on the channel given to [`Datapath::start`]; the
//! daemon then stops, removes its routes and exits non-zero.

pub mod counters;
pub mod device;
pub(crate) mod mailbox;
mod offload;
mod single;
mod steering;
pub(crate) mod trace;
mod worker;

use counters::PacketCounters;
use mailbox::{Mailbox, NatFigures, Posted, Request};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::{mpsc, oneshot};
use tun_rs::InterruptEvent;
use xlat64_nat::{BibEntry, Nat64, Nat64Config, SessionEntry, Shard};

/// The running workers.
pub struct Datapath {
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    view: DatapathView,
}

/// What the control socket holds: the workers' mailboxes and counters.
#[derive(Clone)]
pub struct DatapathView {
    mailboxes: Arc<[Mailbox]>,
    counters: Arc<[Arc<PacketCounters>]>,
    /// Whether the queues carry offloads.
    pub offload: bool,
}

impl Datapath {
    /// Starts one worker per queue of `queues`, worker `i` with shard `i` of
    /// `config` (the session limit, the ICMP error rate and the reassembly
    /// bound divided among them). A worker that ends
    /// other than by [`Datapath::stop`] sends one line saying why on `died`.
    pub fn start(
        queues: device::Queues,
        config: &Nat64Config,
        binding_log: Option<crate::binding_log::Handle>,
        died: mpsc::UnboundedSender<String>,
    ) -> io::Result<Datapath> {
        let count = queues.queues.len();
        let stop = Arc::new(AtomicBool::new(false));
        let mut doorbells = Vec::with_capacity(count);
        let mut receivers = Vec::with_capacity(count);
        let mut mailboxes = Vec::with_capacity(count);
        for _ in 0..count {
            let doorbell = Arc::new(InterruptEvent::new()?);
            let (mailbox, receiver) = Mailbox::new(doorbell.clone());
            doorbells.push(doorbell);
            receivers.push(receiver);
            mailboxes.push(mailbox);
        }
        let mailboxes: Arc<[Mailbox]> = mailboxes.into();
        let counters: Arc<[Arc<PacketCounters>]> = (0..count)
            .map(|_| Arc::new(PacketCounters::default()))
            .collect();
        let mut threads = Vec::with_capacity(count);
        let parts = queues.queues.into_iter().zip(doorbells).zip(receivers);
        for (index, ((dev, doorbell), receiver)) in parts.enumerate() {
            let nat_config = worker_config(config, index, count);
            let shard_parts = (
                counters[index].clone(),
                mailboxes.clone(),
                binding_log.clone(),
            );
            let (stop, died) = (stop.clone(), died.clone());
            let offload = queues.offload;
            dev.set_nonblocking(true)?;
            let thread = std::thread::Builder::new()
                .name(format!("xlat64-worker-{index}"))
                .spawn(move || {
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        // Built here, so that the tables are first touched
                        // (and placed) by the thread that uses them.
                        let mut shard = worker::Shard {
                            nat: Nat64::new(nat_config),
                            counters: shard_parts.0,
                            peers: shard_parts.1,
                            binding_log: shard_parts.2,
                            tracer: None,
                        };
                        if offload {
                            let max = shard.nat.max_output_len();
                            let mut io = offload::Offload::new(&dev, max);
                            worker::run(&dev, &mut io, &mut shard, &receiver, &doorbell, &stop)
                        } else {
                            let mut io = single::Single::new(shard.nat.max_output_len());
                            worker::run(&dev, &mut io, &mut shard, &receiver, &doorbell, &stop)
                        }
                    }));
                    let why = match outcome {
                        Ok(Ok(())) if stop.load(Ordering::Relaxed) => return,
                        Ok(Ok(())) => "stopped".to_string(),
                        Ok(Err(e)) => format!("I/O error on its TUN queue: {e}"),
                        Err(panic) => format!("panicked: {}", panic_text(&*panic)),
                    };
                    let _ = died.send(format!("packet worker {index} {why}"));
                })?;
            threads.push(thread);
        }
        Ok(Datapath {
            threads,
            stop,
            view: DatapathView {
                mailboxes,
                counters,
                offload: queues.offload,
            },
        })
    }

    /// What the control socket needs.
    pub fn view(&self) -> DatapathView {
        self.view.clone()
    }

    /// Stops every worker and waits for them.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for mailbox in self.view.mailboxes.iter() {
            mailbox.ring();
        }
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// Worker `index`'s share of `config` among `count` workers: its shard,
/// and its part of the gateway-wide bounds and rates.
fn worker_config(config: &Nat64Config, index: usize, count: usize) -> Nat64Config {
    let mut nat_config = config.clone();
    // How clients and ports are dealt (client prefix, port runs,
    // deterministic clients) is the configuration's; which share is this
    // worker's.
    nat_config.shard = Shard {
        index: index as u16,
        count: count as u16,
        ..config.shard
    };
    nat_config.max_sessions = config.max_sessions.div_ceil(count).max(1);
    nat_config.max_simultaneous_opens = config.max_simultaneous_opens.div_ceil(count);
    nat_config.icmp_errors_per_second = config.icmp_errors_per_second.div_ceil(count as u32);
    let f = &mut nat_config.fragments;
    f.max_datagrams = f.max_datagrams.div_ceil(count).max(1);
    f.max_per_source = f.max_per_source.min(f.max_datagrams);
    nat_config
}

/// A tracer for one request (`ask` may build the request twice when a
/// mailbox is full).
fn tracer_slot(tracer: &Option<trace::Tracer>) -> Option<trace::Tracer> {
    tracer.as_ref().map(trace::Tracer::clone_for_worker)
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

impl DatapathView {
    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.mailboxes.len()
    }

    /// Worker `i`'s counters.
    pub fn counters(&self, i: usize) -> &PacketCounters {
        &self.counters[i]
    }

    /// Posts a request, retrying while the mailbox is full, and waits for
    /// the answer; `None` when the worker is gone.
    async fn ask<T>(
        &self,
        worker: usize,
        make: impl Fn(oneshot::Sender<T>) -> Request,
    ) -> Option<T> {
        loop {
            let (reply, answer) = oneshot::channel();
            match self.mailboxes[worker].try_post(make(reply)) {
                Posted::Sent => return answer.await.ok(),
                Posted::Gone => return None,
                Posted::Full => {}
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    /// Applies the live settings of `config` (a reload) to every worker,
    /// each its share; false if a worker is gone.
    pub async fn reconfigure(&self, config: &Nat64Config) -> bool {
        let count = self.workers();
        let mut all = true;
        for i in 0..count {
            let share = Arc::new(worker_config(config, i, count));
            all &= self
                .ask(i, |reply| Request::Reconfigure(share.clone(), reply))
                .await
                .is_some();
        }
        all
    }

    /// Starts a trace on every worker (replacing one running), its lines
    /// to `lines`; `None` stops it.
    pub(crate) async fn trace(
        &self,
        filter: Option<(trace::TraceFilter, tokio::sync::mpsc::Sender<String>)>,
    ) {
        for i in 0..self.workers() {
            let tracer = filter
                .clone()
                .map(|(f, lines)| trace::Tracer::new(f, lines));
            let _ = self
                .ask(i, |reply| Request::Trace(tracer_slot(&tracer), reply))
                .await;
        }
    }

    /// Worker `i`'s NAT64 figures.
    pub async fn figures(&self, i: usize) -> Option<NatFigures> {
        self.ask(i, Request::Figures).await
    }

    /// A page of worker `i`'s sessions from position `start` (empty at the end).
    pub async fn sessions_page(&self, i: usize, start: usize) -> Option<Vec<SessionEntry>> {
        self.ask(i, |reply| Request::Sessions(start, reply)).await
    }

    /// A page of worker `i`'s bindings from position `start`.
    pub async fn bib_page(&self, i: usize, start: usize) -> Option<Vec<BibEntry>> {
        self.ask(i, |reply| Request::Bib(start, reply)).await
    }
}
