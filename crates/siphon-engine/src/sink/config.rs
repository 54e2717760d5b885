//! The options of a `nats_jetstream` sink, checked at load time.
//!
//! Binding turns the `WITH (...)` options (environment already substituted) into a
//! [`NatsSinkConfig`], or into every problem found, each naming its option, so a bad
//! subject or a missing password is a load error at its line rather than a sink that
//! fails at run time. Secrets (password, token, nkey seed) are never put in a message.

use std::collections::BTreeMap;
use std::time::Duration;

/// Every option a `nats_jetstream` sink takes (besides `connector`).
pub const SINK_OPTION_NAMES: &[&str] = &[
    "servers",
    "subject",
    "stream",
    "format",
    "start_from",
    "duplicate_window_ms",
    "max_in_flight",
    "publish_timeout_ms",
    "user",
    "password",
    "token",
    "credentials_file",
    "nkey_seed",
    "tls_ca_file",
];

/// The options whose values are secrets.
pub const SECRET_SINK_OPTIONS: &[&str] = &["password", "token", "nkey_seed"];

/// What a published change looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkFormat {
    /// `{"sequence_number": N, "json_data": [{"insert": {...}}, ...]}`, as `/v1/egress`.
    Json,
    /// `{"sequence_number": N, "text_data": "csv lines with a weight column"}`.
    Csv,
}

impl SinkFormat {
    /// The field that holds the rows.
    pub fn field(self) -> &'static str {
        match self {
            SinkFormat::Json => "json_data",
            SinkFormat::Csv => "text_data",
        }
    }
}

/// Where a sink without a published position starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartFrom {
    /// Every change in the log.
    Beginning,
    /// Only changes committed after the sink first started.
    Now,
}

/// How the sink authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum NatsAuth {
    /// No credentials.
    None,
    /// `user` and `password`.
    UserPassword {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
    /// `token`.
    Token(String),
    /// `credentials_file`: a `.creds` file (JWT and nkey seed).
    CredentialsFile(String),
    /// `nkey_seed`.
    NkeySeed(String),
}

impl std::fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NatsAuth::None => "None",
            NatsAuth::UserPassword { .. } => "UserPassword(***)",
            NatsAuth::Token(_) => "Token(***)",
            NatsAuth::CredentialsFile(_) => "CredentialsFile",
            NatsAuth::NkeySeed(_) => "NkeySeed(***)",
        })
    }
}

/// A bound `nats_jetstream` sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsSinkConfig {
    /// Server URLs, tried in order.
    pub servers: Vec<String>,
    /// The subject every change is published to.
    pub subject: String,
    /// The stream to publish into, created when missing; `None`: whichever stream
    /// captures `subject` (it must exist).
    pub stream: Option<String>,
    /// The message format.
    pub format: SinkFormat,
    /// Where a new sink starts.
    pub start_from: StartFrom,
    /// The duplicate window of a stream the sink creates.
    pub duplicate_window: Duration,
    /// Publishes awaiting their acknowledgement at most.
    pub max_in_flight: usize,
    /// How long an acknowledgement may take.
    pub publish_timeout: Duration,
    /// Credentials.
    pub auth: NatsAuth,
    /// A CA certificate file for `tls://` servers.
    pub tls_ca_file: Option<String>,
}

/// One problem with a sink's options: the option (when one is at fault) and the message.
pub type OptionProblem = (Option<String>, String);

impl NatsSinkConfig {
    /// Binds `options` (environment substituted, `connector` left out).
    pub fn bind(options: &BTreeMap<String, String>) -> Result<Self, Vec<OptionProblem>> {
        let mut problems: Vec<OptionProblem> = Vec::new();
        let mut problem = |option: &str, message: String| {
            problems.push((Some(option.to_string()), message));
        };
        for key in options.keys() {
            if !SINK_OPTION_NAMES.contains(&key.as_str()) {
                let hint =
                    siphon_ddl::suggest::did_you_mean(key, SINK_OPTION_NAMES.iter().copied());
                problem(
                    key,
                    format!("unknown option `{key}` for a nats_jetstream sink{hint}"),
                );
            }
        }
        let get = |k: &str| options.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());

        let servers: Vec<String> = get("servers")
            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default();
        if servers.is_empty() {
            problem(
                "servers",
                "a nats_jetstream sink needs `servers` (e.g. servers = 'nats://127.0.0.1:4222')"
                    .into(),
            );
        }
        for server in &servers {
            if let Err(e) = check_server(server) {
                problem("servers", e);
            }
        }
        let subject = get("subject").unwrap_or_default().to_string();
        if subject.is_empty() {
            problem(
                "subject",
                "a nats_jetstream sink needs `subject` (e.g. subject = 'siphon.orders')".into(),
            );
        } else if let Err(e) = check_subject(&subject) {
            problem("subject", e);
        }
        let stream = get("stream").map(str::to_string);
        if let Some(stream) = &stream
            && let Some(bad) = stream
                .chars()
                .find(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
        {
            problem(
                "stream",
                format!("a stream name cannot contain `{bad}` (got `{stream}`)"),
            );
        }
        let format = match get("format").map(str::to_ascii_lowercase).as_deref() {
            None | Some("json") => SinkFormat::Json,
            Some("csv") => SinkFormat::Csv,
            Some(other) => {
                problem(
                    "format",
                    format!("format must be json or csv, not `{other}`"),
                );
                SinkFormat::Json
            }
        };
        let start_from = match get("start_from").map(str::to_ascii_lowercase).as_deref() {
            None | Some("beginning") => StartFrom::Beginning,
            Some("now") => StartFrom::Now,
            Some(other) => {
                problem(
                    "start_from",
                    format!("start_from must be beginning or now, not `{other}`"),
                );
                StartFrom::Beginning
            }
        };
        let mut number = |key: &str, default: u64, min: u64, max: u64| -> u64 {
            match get(key) {
                None => default,
                Some(v) => match v.parse::<u64>() {
                    Ok(n) if (min..=max).contains(&n) => n,
                    _ => {
                        problem(
                            key,
                            format!("{key} must be a whole number from {min} to {max}, not `{v}`"),
                        );
                        default
                    }
                },
            }
        };
        let duplicate_window =
            Duration::from_millis(number("duplicate_window_ms", 120_000, 1_000, 86_400_000));
        let max_in_flight = number("max_in_flight", 256, 1, 65_536) as usize;
        let publish_timeout =
            Duration::from_millis(number("publish_timeout_ms", 5_000, 100, 600_000));

        let given: Vec<&str> = ["user", "token", "credentials_file", "nkey_seed"]
            .into_iter()
            .filter(|k| get(k).is_some())
            .collect();
        if given.len() > 1 {
            problem(
                given[1],
                format!(
                    "give one way to authenticate, not {}",
                    given
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            );
        }
        if get("password").is_some() && get("user").is_none() {
            problem("password", "`password` needs `user`".into());
        }
        let auth = match given.first().copied() {
            Some("user") => match get("password") {
                Some(password) => NatsAuth::UserPassword {
                    user: get("user").unwrap_or_default().to_string(),
                    password: password.to_string(),
                },
                None => {
                    problem("user", "`user` needs `password`".into());
                    NatsAuth::None
                }
            },
            Some("token") => NatsAuth::Token(get("token").unwrap_or_default().to_string()),
            Some("credentials_file") => {
                NatsAuth::CredentialsFile(get("credentials_file").unwrap_or_default().to_string())
            }
            Some("nkey_seed") => {
                let seed = get("nkey_seed").unwrap_or_default().to_string();
                if !seed.starts_with("SU") {
                    problem(
                        "nkey_seed",
                        "an nkey seed for a user starts with `SU` (the value is not shown)".into(),
                    );
                }
                NatsAuth::NkeySeed(seed)
            }
            _ => NatsAuth::None,
        };
        let tls_ca_file = get("tls_ca_file").map(str::to_string);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(NatsSinkConfig {
            servers,
            subject,
            stream,
            format,
            start_from,
            duplicate_window,
            max_in_flight,
            publish_timeout,
            auth,
            tls_ca_file,
        })
    }

    /// What identifies where the sink's messages go: a published position only carries
    /// over to a sink with the same input and target.
    pub fn target(&self, from: &str) -> String {
        format!(
            "{from}|{}|{}",
            self.stream.as_deref().unwrap_or(""),
            self.subject
        )
    }
}

/// A server address: `nats://`, `tls://`, `ws://`, `wss://` or a bare `host:port`.
fn check_server(server: &str) -> Result<(), String> {
    let rest = match server.split_once("://") {
        Some((scheme, rest)) => {
            if !matches!(scheme, "nats" | "tls" | "ws" | "wss") {
                return Err(format!(
                    "server `{server}`: the scheme must be nats://, tls://, ws:// or wss://"
                ));
            }
            rest
        }
        None => server,
    };
    let host_port = rest.rsplit('@').next().unwrap_or(rest);
    let host_port = host_port.split('/').next().unwrap_or(host_port);
    if host_port.is_empty() || host_port.contains(char::is_whitespace) {
        return Err(format!("server `{server}` has no host"));
    }
    if let Some((_, port)) = host_port.rsplit_once(':')
        && !port.is_empty()
        && !host_port.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return Err(format!("server `{server}`: `{port}` is not a port"));
    }
    Ok(())
}

/// A subject to publish to: dot-separated non-empty tokens, without wildcards or spaces.
fn check_subject(subject: &str) -> Result<(), String> {
    if subject.contains(char::is_whitespace) {
        return Err(format!("subject `{subject}` contains white space"));
    }
    for token in subject.split('.') {
        if token.is_empty() {
            return Err(format!(
                "subject `{subject}` has an empty token (two dots in a row, or a dot at an end)"
            ));
        }
        if token == "*" || token == ">" {
            return Err(format!(
                "subject `{subject}` contains the wildcard `{token}`: a sink publishes to one \
                 subject (a stream may capture it with a wildcard)"
            ));
        }
    }
    Ok(())
}

/// Whether the stream subject `pattern` (which may hold `*` and `>`) captures `subject`.
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(pairs: &[(&str, &str)]) -> Result<NatsSinkConfig, Vec<OptionProblem>> {
        NatsSinkConfig::bind(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn problems(pairs: &[(&str, &str)]) -> Vec<String> {
        bind(pairs)
            .unwrap_err()
            .into_iter()
            .map(|(o, m)| format!("{}: {m}", o.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn defaults_and_full_options_bind() {
        let c = bind(&[("servers", "nats://127.0.0.1:4222"), ("subject", "a.b")]).unwrap();
        assert_eq!(c.servers, ["nats://127.0.0.1:4222"]);
        assert_eq!(c.stream, None);
        assert_eq!(c.format, SinkFormat::Json);
        assert_eq!(c.start_from, StartFrom::Beginning);
        assert_eq!(c.duplicate_window, Duration::from_secs(120));
        assert_eq!(c.max_in_flight, 256);
        assert_eq!(c.auth, NatsAuth::None);

        let c = bind(&[
            ("servers", "nats://a:4222, tls://b:4443"),
            ("subject", "orders.changes"),
            ("stream", "ORDERS"),
            ("format", "CSV"),
            ("start_from", "now"),
            ("user", "u"),
            ("password", "hunter2"),
            ("max_in_flight", "8"),
        ])
        .unwrap();
        assert_eq!(c.servers, ["nats://a:4222", "tls://b:4443"]);
        assert_eq!(c.stream.as_deref(), Some("ORDERS"));
        assert_eq!(c.format, SinkFormat::Csv);
        assert_eq!(c.start_from, StartFrom::Now);
        assert_eq!(
            c.auth,
            NatsAuth::UserPassword {
                user: "u".into(),
                password: "hunter2".into()
            }
        );
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.target("t"), "t|ORDERS|orders.changes");
    }

    #[test]
    fn every_problem_names_its_option_and_hides_secrets() {
        let found = problems(&[
            ("servers", "http://x:4222"),
            ("subject", "a.*"),
            ("stream", "my.stream"),
            ("subjct", "x"),
            ("max_in_flight", "0"),
            ("token", "s3cret"),
            ("nkey_seed", "nope-secret"),
        ]);
        assert_eq!(
            found,
            [
                "subjct: unknown option `subjct` for a nats_jetstream sink, did you mean `subject`?",
                "servers: server `http://x:4222`: the scheme must be nats://, tls://, ws:// or wss://",
                "subject: subject `a.*` contains the wildcard `*`: a sink publishes to one subject (a stream may capture it with a wildcard)",
                "stream: a stream name cannot contain `.` (got `my.stream`)",
                "max_in_flight: max_in_flight must be a whole number from 1 to 65536, not `0`",
                "nkey_seed: give one way to authenticate, not `token` and `nkey_seed`",
            ]
        );
        assert!(!found.iter().any(|m| m.contains("s3cret")));
        assert_eq!(
            problems(&[("subject", "a..b"), ("password", "p")]),
            [
                "servers: a nats_jetstream sink needs `servers` (e.g. servers = 'nats://127.0.0.1:4222')",
                "subject: subject `a..b` has an empty token (two dots in a row, or a dot at an end)",
                "password: `password` needs `user`",
            ]
        );
        assert_eq!(
            problems(&[("servers", "127.0.0.1:x"), ("subject", "s"), ("user", "u")]),
            [
                "servers: server `127.0.0.1:x`: `x` is not a port",
                "user: `user` needs `password`"
            ]
        );
    }

    #[test]
    fn stream_subjects_match_like_nats() {
        assert!(subject_matches("a.b", "a.b"));
        assert!(subject_matches("a.*", "a.b"));
        assert!(subject_matches("a.>", "a.b.c"));
        assert!(subject_matches(">", "a"));
        assert!(!subject_matches("a.*", "a.b.c"));
        assert!(!subject_matches("a.>", "a"));
        assert!(!subject_matches("a.b", "a.b.c"));
    }
}
