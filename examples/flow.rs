//! Whole flows per second (issue 15, `scripts/bench` path `flow`): each of `--concurrency`
//! workers repeats the flow an MCP client and its person go through against one Doorman in dev
//! sign-in mode — `POST /register`, `GET /authorize` (the consent page), `POST /consent`
//! (approve; the approval is remembered), `POST /token` (the code), `POST /token` (the refresh
//! token) — for `--seconds`, and prints one line:
//! `FLOW {"flows":…,"requests":…,"failures":…,"duration_us":…,"p50_us":…,"p99_us":…}`
//! (latencies are of whole flows). Any answer other than the expected one counts as a failure,
//! and the first few are printed to standard error.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line report

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};

/// A valid S256 challenge (RFC 7636 appendix B) and its verifier.
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "http://127.0.0.1:9/cb";
const REDIRECT_ENCODED: &str = "http%3A%2F%2F127.0.0.1%3A9%2Fcb";
const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

#[derive(Parser, Debug)]
#[command(
    name = "flow",
    about = "Whole OAuth flows per second against one Doorman (dev sign-in)"
)]
struct Args {
    /// Doorman's base URL (its issuer), e.g. http://127.0.0.1:8080
    #[arg(long)]
    base: String,
    /// Flows in progress at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long to run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

struct Ctx {
    base: String,
    http: awc::Client,
    deadline: Instant,
    requests: Cell<u64>,
    failures: Cell<u64>,
    /// Whole-flow latencies, microseconds.
    flows: RefCell<Vec<u64>>,
}

/// An answer, read completely.
struct Reply {
    status: u16,
    headers: awc::http::header::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn form_field(&self, name: &str) -> Option<String> {
        let body = std::str::from_utf8(&self.body).ok()?;
        let marker = format!("name=\"{name}\" value=\"");
        let start = body.find(&marker)? + marker.len();
        let len = body[start..].find('"')?;
        Some(body[start..start + len].to_owned())
    }

    /// Every cookie set, as a Cookie header value.
    fn cookies(&self) -> String {
        self.headers
            .get_all("set-cookie")
            .filter_map(|v| v.to_str().ok())
            .filter_map(|line| line.split(';').next())
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn code(&self) -> Option<String> {
        let location = self.headers.get("location")?.to_str().ok()?;
        let url = url::Url::parse(location).ok()?;
        url.query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl Ctx {
    async fn send(
        &self,
        req: awc::ClientRequest,
        form: Option<&[(&str, &str)]>,
        body: Option<&Value>,
    ) -> Option<Reply> {
        self.requests.set(self.requests.get() + 1);
        let sent = match (form, body) {
            (Some(f), _) => req.send_form(&f).await,
            (None, Some(j)) => req.send_json(j).await,
            (None, None) => req.send().await,
        };
        let mut res = sent.ok()?;
        let body = res.body().limit(1 << 20).await.ok()?;
        Some(Reply {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body: body.to_vec(),
        })
    }

    fn fail(&self, what: &str, reply: Option<&Reply>) {
        let n = self.failures.get() + 1;
        self.failures.set(n);
        if n <= 5 {
            let detail = reply.map_or_else(
                || "no answer".to_owned(),
                |r| format!("{}: {}", r.status, String::from_utf8_lossy(&r.body)),
            );
            eprintln!("flow: {what} answered {detail}");
        }
    }

    /// One whole flow; true when every step answered as expected.
    async fn flow(&self) -> bool {
        let base = &self.base;
        let registration = json!({
            "client_name": "flow bench",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
        });
        let req = self.http.post(format!("{base}/register"));
        let reply = self.send(req, None, Some(&registration)).await;
        let Some(client_id) = reply
            .as_ref()
            .filter(|r| r.status == 201)
            .and_then(|r| r.json()["client_id"].as_str().map(str::to_owned))
        else {
            self.fail("POST /register", reply.as_ref());
            return false;
        };

        let url = format!(
            "{base}/authorize?response_type=code&client_id={client_id}&redirect_uri={REDIRECT_ENCODED}&code_challenge={CHALLENGE}&code_challenge_method=S256&state=s&scope=mcp%20offline_access"
        );
        let reply = self
            .send(
                self.http.get(url).insert_header(("accept", HTML)),
                None,
                None,
            )
            .await;
        let Some((cookies, request, csrf)) =
            reply.as_ref().filter(|r| r.status == 200).and_then(|r| {
                Some((
                    r.cookies(),
                    r.form_field("request")?,
                    r.form_field("csrf_token")?,
                ))
            })
        else {
            self.fail("GET /authorize", reply.as_ref());
            return false;
        };

        let req = self
            .http
            .post(format!("{base}/consent"))
            .insert_header(("cookie", cookies))
            .insert_header(("origin", base.as_str()));
        let form = [
            ("request", request.as_str()),
            ("csrf_token", csrf.as_str()),
            ("decision", "approve"),
        ];
        let reply = self.send(req, Some(&form), None).await;
        let Some(code) = reply.as_ref().and_then(Reply::code) else {
            self.fail("POST /consent", reply.as_ref());
            return false;
        };

        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", client_id.as_str()),
        ];
        let reply = self
            .send(self.http.post(format!("{base}/token")), Some(&form), None)
            .await;
        let Some(refresh) = reply
            .as_ref()
            .filter(|r| r.status == 200)
            .and_then(|r| r.json()["refresh_token"].as_str().map(str::to_owned))
        else {
            self.fail("POST /token (code)", reply.as_ref());
            return false;
        };

        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", client_id.as_str()),
        ];
        let reply = self
            .send(self.http.post(format!("{base}/token")), Some(&form), None)
            .await;
        if reply.as_ref().is_none_or(|r| r.status != 200) {
            self.fail("POST /token (refresh)", reply.as_ref());
            return false;
        }
        true
    }
}

async fn worker(ctx: Rc<Ctx>) {
    while Instant::now() < ctx.deadline {
        let started = Instant::now();
        if ctx.flow().await {
            let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            ctx.flows.borrow_mut().push(us);
        }
    }
}

fn percentile(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn main() {
    let args = Args::parse();
    actix_web::rt::System::new().block_on(async move {
        let started = Instant::now();
        let ctx = Rc::new(Ctx {
            base: args.base.trim_end_matches('/').to_owned(),
            http: awc::Client::builder()
                .timeout(Duration::from_secs(15))
                .disable_redirects()
                .connector(awc::Connector::new().limit(args.concurrency.max(1)))
                .finish(),
            deadline: started + Duration::from_secs(args.seconds),
            requests: Cell::new(0),
            failures: Cell::new(0),
            flows: RefCell::new(Vec::new()),
        });
        let workers: Vec<_> = (0..args.concurrency.max(1))
            .map(|_| actix_web::rt::spawn(worker(ctx.clone())))
            .collect();
        for w in workers {
            let _ = w.await;
        }
        let elapsed = started.elapsed();
        let mut flows = ctx.flows.borrow().clone();
        flows.sort_unstable();
        println!(
            "FLOW {}",
            json!({
                "flows": flows.len(),
                "requests": ctx.requests.get(),
                "failures": ctx.failures.get(),
                "duration_us": u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                "p50_us": percentile(&flows, 50),
                "p99_us": percentile(&flows, 99),
            })
        );
    });
}
