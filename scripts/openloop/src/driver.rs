//! The event loop of one sending thread: a share of the connections, non-blocking sockets
//! under epoll, each connection sending its requests when they are due (`plan.rs`).
//!
//! Why epoll rather than a thread per connection or an async runtime: a thread per connection
//! pays a sleep and a blocking read per request, two trips through the scheduler (measured on
//! the benchmark's 2-core machine against its baseline at 15,000 req/s: about 45 µs of CPU per
//! request, against about 20 µs for this loop and 15 µs for wrk at saturation), CPU taken from
//! the server on the same cores. An async runtime's timers round every wait up to the next
//! millisecond, which would be added to the latency of every request that waits for its due
//! time. `epoll_pwait2` waits to the nanosecond and batches the answers of many connections.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::iter::StepBy;
use std::net::{SocketAddr, TcpStream};
use std::ops::Range;
use std::os::fd::OwnedFd;
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use rustix::buffer::spare_capacity;
use rustix::event::{Timespec, epoll};
use rustix::io::Errno;

use crate::http::{self, Outcome, Url};
use crate::plan::Schedule;

/// What every sending thread needs to know.
pub struct Job {
    pub schedule: Schedule,
    pub addr: SocketAddr,
    pub url: Url,
    pub method: String,
    pub headers: Vec<String>,
    /// The whole request, when every request is the same.
    pub fixed: Option<Vec<u8>>,
    /// The start of every body, and the ends to append to it, one per request.
    pub prefix: Vec<u8>,
    pub codes: Option<Vec<String>>,
    pub head: bool,
    pub timeout: Duration,
    pub duration: Duration,
}

impl Job {
    /// The bytes of request `n`, or None when the codes have run out.
    pub fn request(&self, n: u64) -> Option<Cow<'_, [u8]>> {
        if let Some(fixed) = &self.fixed {
            return Some(fixed.as_slice().into());
        }
        let code = self.codes.as_ref()?.get(usize::try_from(n).ok()?)?;
        let mut body = self.prefix.clone();
        body.extend_from_slice(code.as_bytes());
        Some(http::request(&self.method, &self.url, &self.headers, Some(&body)).into())
    }
}

/// One thread's counts; added up at the end.
#[derive(Default)]
pub struct Tally {
    pub sent: u64,
    pub answered: u64,
    pub unsent: u64,
    pub pool_exhausted: bool,
    pub connect_errors: u64,
    pub write_errors: u64,
    pub read_errors: u64,
    pub timeouts: u64,
    pub parse_errors: u64,
    pub reconnects: u64,
    pub status: BTreeMap<u16, u64>,
    /// Microseconds from due to the end of the answer.
    pub latencies: Vec<u64>,
    /// Microseconds from due to the request's first byte written.
    pub lags: Vec<u64>,
    /// When the last answer ended, from the start.
    pub last: Duration,
    /// The first few errors, to say what went wrong.
    pub first_errors: Vec<String>,
    /// A failure of the thread itself (no epoll), which voids the run.
    pub fatal: Option<String>,
}

impl Tally {
    fn note(&mut self, what: String) {
        if self.first_errors.len() < 3 {
            self.first_errors.push(what);
        }
    }

    pub fn add(&mut self, other: Tally) {
        self.sent += other.sent;
        self.answered += other.answered;
        self.unsent += other.unsent;
        self.pool_exhausted |= other.pool_exhausted;
        self.connect_errors += other.connect_errors;
        self.write_errors += other.write_errors;
        self.read_errors += other.read_errors;
        self.timeouts += other.timeouts;
        self.parse_errors += other.parse_errors;
        self.reconnects += other.reconnects;
        for (s, n) in other.status {
            *self.status.entry(s).or_default() += n;
        }
        self.latencies.extend(other.latencies);
        self.lags.extend(other.lags);
        self.last = self.last.max(other.last);
        for e in other.first_errors {
            self.note(e);
        }
        self.fatal = self.fatal.take().or(other.fatal);
    }

    pub fn errors(&self) -> u64 {
        self.connect_errors
            + self.write_errors
            + self.read_errors
            + self.timeouts
            + self.parse_errors
    }
}

pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The request a connection waits on.
struct Flight {
    due: Instant,
    written: Instant,
    /// Bytes the socket did not take yet (written when it is writable again).
    out: Vec<u8>,
}

struct Conn {
    /// Its requests of the schedule not sent yet.
    slots: StepBy<Range<u64>>,
    next: Option<u64>,
    left: u64,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    flight: Option<Flight>,
    done: bool,
}

/// A thread's connections and its epoll instance; a connection's index is its epoll data.
struct Loop<'a> {
    job: &'a Job,
    ep: OwnedFd,
    conns: Vec<Conn>,
    tally: Tally,
    t0: Instant,
}

const IN: epoll::EventFlags = epoll::EventFlags::IN;

impl Loop<'_> {
    /// Opens connection `i` (blocking connect on loopback, then non-blocking under epoll).
    fn open(&mut self, i: usize) -> Result<(), String> {
        let addr = self.job.addr;
        let stream = TcpStream::connect_timeout(&addr, self.job.timeout)
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        stream
            .set_nodelay(true)
            .and_then(|()| stream.set_nonblocking(true))
            .map_err(|e| format!("setting up a connection to {addr}: {e}"))?;
        epoll::add(&self.ep, &stream, epoll::EventData::new_u64(i as u64), IN)
            .map_err(|e| format!("watching a connection with epoll: {e}"))?;
        let conn = &mut self.conns[i];
        conn.stream = Some(stream);
        conn.buf.clear();
        Ok(())
    }

    /// Forgets a connection's socket (closing it removes it from epoll) and its request.
    fn drop_stream(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        conn.stream = None;
        conn.flight = None;
        conn.buf.clear();
    }

    /// Sends every request that is due on connection `i`, as long as it is idle; returns when
    /// it waits for an answer, or its next request is due later (then: when), or it is done.
    fn send_due(&mut self, i: usize, now: Instant, end: Instant) -> Option<Instant> {
        loop {
            let conn = &mut self.conns[i];
            if conn.done || conn.flight.is_some() {
                return None;
            }
            let Some(n) = conn.next else {
                conn.done = true;
                return None;
            };
            // Behind schedule when the run's time is up (and the connection's period after it, so
            // that a last request written a few µs late still counts): what is left is never sent.
            if now >= end {
                self.tally.unsent += conn.left;
                conn.left = 0;
                conn.done = true;
                return None;
            }
            let due = self.t0 + self.job.schedule.due(n);
            if due > now {
                return Some(due);
            }
            let job = self.job;
            let Some(request) = job.request(n) else {
                self.tally.pool_exhausted = true;
                self.tally.unsent += conn.left;
                conn.left = 0;
                conn.done = true;
                return None;
            };
            conn.next = conn.slots.next();
            conn.left -= 1;
            self.tally.sent += 1;
            self.send(i, &request, due);
        }
    }

    fn send(&mut self, i: usize, request: &[u8], due: Instant) {
        if self.conns[i].stream.is_none() {
            self.tally.reconnects += 1;
            if let Err(e) = self.open(i) {
                self.tally.connect_errors += 1;
                self.tally.note(e);
                return;
            }
        }
        let written = Instant::now();
        self.tally
            .lags
            .push(micros(written.saturating_duration_since(due)));
        let conn = &mut self.conns[i];
        let Some(stream) = conn.stream.as_mut() else {
            return;
        };
        let rest = match stream.write(request) {
            Ok(n) => &request[n..],
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => request,
            Err(e) => {
                self.tally.write_errors += 1;
                self.tally.note(format!("writing a request: {e}"));
                self.drop_stream(i);
                return;
            }
        };
        conn.flight = Some(Flight {
            due,
            written,
            out: rest.to_vec(),
        });
        if !rest.is_empty() {
            self.watch(i, IN | epoll::EventFlags::OUT);
        }
    }

    fn watch(&mut self, i: usize, flags: epoll::EventFlags) {
        let Some(stream) = self.conns[i].stream.as_ref() else {
            return;
        };
        if let Err(e) = epoll::modify(&self.ep, stream, epoll::EventData::new_u64(i as u64), flags)
        {
            self.tally.write_errors += 1;
            self.tally
                .note(format!("watching a connection with epoll: {e}"));
            self.drop_stream(i);
        }
    }

    /// The socket can take the rest of a request.
    fn flush(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        let (Some(stream), Some(flight)) = (conn.stream.as_mut(), conn.flight.as_mut()) else {
            return;
        };
        if flight.out.is_empty() {
            return;
        }
        match stream.write(&flight.out) {
            Ok(n) => {
                flight.out.drain(..n);
                if flight.out.is_empty() {
                    self.watch(i, IN);
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(e) => {
                self.tally.write_errors += 1;
                self.tally.note(format!("writing a request: {e}"));
                self.drop_stream(i);
            }
        }
    }

    /// Reads what connection `i` has; counts the answer when it is complete.
    fn read(&mut self, i: usize, chunk: &mut [u8]) {
        loop {
            let conn = &mut self.conns[i];
            let Some(stream) = conn.stream.as_mut() else {
                return;
            };
            let eof = match stream.read(chunk) {
                Ok(0) => true,
                Ok(n) => {
                    conn.buf.extend_from_slice(&chunk[..n]);
                    false
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    if conn.flight.is_some() {
                        self.tally.read_errors += 1;
                        self.tally.note(format!("reading an answer: {e}"));
                    }
                    self.drop_stream(i);
                    return;
                }
            };
            let Some(flight) = conn.flight.as_ref() else {
                // Nothing asked: the server closed an idle connection (the next request opens
                // another), or sent bytes nobody asked for (never taken for the next answer).
                if !eof {
                    self.tally.parse_errors += 1;
                    self.tally
                        .note("bytes on a connection with no request in flight".to_owned());
                }
                self.drop_stream(i);
                return;
            };
            let due = flight.due;
            match http::parse_response(&conn.buf, eof, self.job.head) {
                Ok(Outcome::Complete(r)) => {
                    let done = Instant::now();
                    let t = &mut self.tally;
                    t.answered += 1;
                    t.latencies
                        .push(micros(done.saturating_duration_since(due)));
                    t.last = t.last.max(done.saturating_duration_since(self.t0));
                    *t.status.entry(r.status).or_default() += 1;
                    conn.flight = None;
                    conn.buf.drain(..r.len);
                    // Bytes after the answer to the only request in flight would be taken for
                    // the next answer: start again on a new connection rather than misread.
                    if !conn.buf.is_empty() {
                        t.parse_errors += 1;
                        t.note(format!("{} bytes after a complete answer", conn.buf.len()));
                        self.drop_stream(i);
                    } else if r.close || eof {
                        self.drop_stream(i);
                    }
                    return;
                }
                Ok(Outcome::Incomplete) if !eof => {}
                Ok(Outcome::Incomplete) => {
                    self.tally.read_errors += 1;
                    self.tally
                        .note("the connection was closed before the answer".to_owned());
                    self.drop_stream(i);
                    return;
                }
                Err(e) => {
                    if eof {
                        self.tally.read_errors += 1;
                    } else {
                        self.tally.parse_errors += 1;
                    }
                    self.tally.note(format!("reading an answer: {e}"));
                    self.drop_stream(i);
                    return;
                }
            }
        }
    }

    fn run(&mut self) {
        let s = &self.job.schedule;
        let end = self.t0 + self.job.duration + s.due(s.connections());
        let mut events: Vec<epoll::Event> = Vec::with_capacity(self.conns.len().max(1));
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let now = Instant::now();
            let mut wake: Option<Instant> = None;
            let mut busy = false;
            for i in 0..self.conns.len() {
                if let Some(f) = &self.conns[i].flight {
                    let deadline = f.written + self.job.timeout;
                    if now < deadline {
                        busy = true;
                        wake = Some(wake.map_or(deadline, |w| w.min(deadline)));
                        continue;
                    }
                    self.tally.timeouts += 1;
                    self.tally
                        .note(format!("no answer within {:?}", self.job.timeout));
                    self.drop_stream(i);
                }
                if let Some(due) = self.send_due(i, now, end) {
                    wake = Some(wake.map_or(due, |w| w.min(due)));
                }
                let conn = &self.conns[i];
                busy |= !conn.done;
            }
            if !busy {
                return;
            }
            events.clear();
            let timeout = wake
                .and_then(|w| Timespec::try_from(w.saturating_duration_since(Instant::now())).ok());
            match epoll::wait(&self.ep, spare_capacity(&mut events), timeout.as_ref()) {
                Ok(_) => {}
                Err(Errno::INTR) => continue,
                Err(e) => {
                    self.tally.fatal = Some(format!(
                        "waiting on epoll: {e} (epoll_pwait2 needs Linux 5.11 or later)"
                    ));
                    return;
                }
            }
            for ev in &events {
                let (i, flags) = (ev.data.u64() as usize, ev.flags);
                if i >= self.conns.len() {
                    continue;
                }
                if flags.contains(epoll::EventFlags::OUT) {
                    self.flush(i);
                }
                if flags.intersects(IN | epoll::EventFlags::ERR | epoll::EventFlags::HUP) {
                    self.read(i, &mut chunk);
                }
            }
        }
    }
}

/// One sending thread: connections `mine` (numbers in the schedule). Opens them, waits at `ready`
/// and `go` for every thread to be ready and the main thread to set `start`, then runs.
pub fn run_thread(
    job: &Job,
    mine: Vec<u64>,
    ready: &Barrier,
    go: &Barrier,
    start: &Mutex<Option<Instant>>,
) -> Tally {
    let mut tally = Tally::default();
    let ep = match epoll::create(epoll::CreateFlags::CLOEXEC) {
        Ok(ep) => Some(ep),
        Err(e) => {
            tally.fatal = Some(format!("creating an epoll instance: {e}"));
            None
        }
    };
    let conns: Vec<Conn> = mine
        .iter()
        .map(|&c| {
            let mut slots = job.schedule.slots(c);
            let next = slots.next();
            Conn {
                slots,
                next,
                left: job.schedule.count(c),
                stream: None,
                buf: Vec::with_capacity(16 * 1024),
                flight: None,
                done: false,
            }
        })
        .collect();
    let count: u64 = mine.iter().map(|&c| job.schedule.count(c)).sum();
    let Some(ep) = ep else {
        ready.wait();
        go.wait();
        return tally;
    };
    let mut lp = Loop {
        job,
        ep,
        conns,
        tally,
        t0: Instant::now(),
    };
    lp.tally
        .latencies
        .reserve(usize::try_from(count).unwrap_or(0));
    lp.tally.lags.reserve(usize::try_from(count).unwrap_or(0));
    // Connected before the start, so that connecting is not in the first requests' latency; a
    // connection that fails now is tried again at its first request.
    for i in 0..lp.conns.len() {
        if let Err(e) = lp.open(i) {
            lp.tally.note(e);
        }
    }
    ready.wait();
    go.wait();
    let Some(t0) = *start.lock().unwrap_or_else(|p| p.into_inner()) else {
        return lp.tally;
    };
    lp.t0 = t0;
    lp.run();
    lp.tally
}
