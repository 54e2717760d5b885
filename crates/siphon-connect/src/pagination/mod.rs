//! Pagination: how one poll walks from one page of an API to the next.
//!
//! This module owns every *decision* of a paginated poll and none of its I/O: what to
//! request first, where the next page is (an offset, a page number, a cursor read from the
//! body, a `Link` header, a URL in the body), when the walk stops (an empty page, a page
//! shorter than `page_size`, no next cursor/link/URL, `max_pages`), and the guards against
//! servers that loop (a cursor or URL already seen in the same poll, SPEC §1.3). The
//! polling source asks [`PageWalk::first`] what to send, sends it, and hands what came back
//! to [`PageWalk::next`]. Keeping it free of HTTP makes every stop rule and guard testable
//! without a server, and lets fan-out run one independent walk per parent request.
//!
//! Options (SPEC §1.2): `pagination_type` = none | offset (`page_size`, `offset_param`,
//! `limit_param`) | page (`page_size`, `page_param`, `size_param`, `start_page`) | cursor
//! (`cursor_param`, `cursor_path`) | link_header (`link_rel`) | next_url (`next_url_path`),
//! and `max_pages` (default [`DEFAULT_MAX_PAGES`]).
//!
//! Stop rules: offset and page kinds stop at a page with no records or shorter than
//! `page_size`. Cursor, link_header and next_url stop when there is no next cursor/link/URL
//! (a missing, `null` or empty-string value means "no next"); a page with no records that
//! still names a next page is followed, since APIs that filter pages can return an empty
//! page mid-list, unless that cursor/URL was already seen in this poll (or cannot be read
//! from the empty page), which ends the walk instead of failing it as a cycle. When another page would follow but `max_pages`
//! pages have been walked, the walk answers [`Step::MaxPages`]; a walk whose last page is
//! exactly page `max_pages` is [`Step::Done`].

use std::collections::HashSet;
use std::fmt;

use reqwest::Url;
use reqwest::header::{HeaderMap, LINK};
use serde_json::Value;
use serde_json_path::JsonPath;

/// Default of `max_pages`: the most pages one poll walks.
pub const DEFAULT_MAX_PAGES: u32 = 1000;
/// Default of `offset_param`.
pub const DEFAULT_OFFSET_PARAM: &str = "offset";
/// Default of `limit_param`.
pub const DEFAULT_LIMIT_PARAM: &str = "limit";
/// Default of `page_param`.
pub const DEFAULT_PAGE_PARAM: &str = "page";
/// Default of `start_page`.
pub const DEFAULT_START_PAGE: u64 = 1;
/// Default of `cursor_param`.
pub const DEFAULT_CURSOR_PARAM: &str = "cursor";
/// Default of `link_rel`.
pub const DEFAULT_LINK_REL: &str = "next";

/// How an API spreads one poll's records over several responses (`pagination_type`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Pagination {
    /// One request per poll (`pagination_type = 'none'`).
    #[default]
    None,
    /// `?offset=0&limit=N`, then `offset=N`, `2N`, ... (`pagination_type = 'offset'`).
    Offset {
        /// Records asked for per page (`page_size`), sent as `limit_param`.
        page_size: u64,
        /// Query parameter carrying the offset (`offset_param`, default `offset`).
        offset_param: String,
        /// Query parameter carrying the page size (`limit_param`, default `limit`).
        limit_param: String,
    },
    /// `?page=1&per_page=N`, then `page=2`, ... (`pagination_type = 'page'`).
    Page {
        /// Records expected per page (`page_size`); a shorter page is the last.
        page_size: u64,
        /// Query parameter carrying the page number (`page_param`, default `page`).
        page_param: String,
        /// Query parameter carrying the page size (`size_param`); `None` = not sent.
        size_param: Option<String>,
        /// Number of the first page (`start_page`, default 1; 0 for zero-based APIs).
        start_page: u64,
    },
    /// The body names the next page's cursor (`pagination_type = 'cursor'`).
    Cursor {
        /// Query parameter carrying the cursor (`cursor_param`, default `cursor`).
        cursor_param: String,
        /// JSONPath (RFC 9535) to the next cursor in the body (`cursor_path`),
        /// e.g. `$.meta.next_cursor`.
        cursor_path: String,
    },
    /// An RFC 8288 `Link` header names the next page (`pagination_type = 'link_header'`).
    LinkHeader {
        /// Relation type of the next page's link (`link_rel`, default `next`).
        rel: String,
    },
    /// The body holds the next page's URL (`pagination_type = 'next_url'`).
    NextUrl {
        /// JSONPath (RFC 9535) to the next page's URL in the body (`next_url_path`).
        next_url_path: String,
    },
}

impl Pagination {
    /// Offset pagination with the default parameter names.
    pub fn offset(page_size: u64) -> Self {
        Pagination::Offset {
            page_size,
            offset_param: DEFAULT_OFFSET_PARAM.to_owned(),
            limit_param: DEFAULT_LIMIT_PARAM.to_owned(),
        }
    }

    /// Page-number pagination with the default parameter name, no size parameter, and
    /// pages numbered from [`DEFAULT_START_PAGE`].
    pub fn page(page_size: u64) -> Self {
        Pagination::Page {
            page_size,
            page_param: DEFAULT_PAGE_PARAM.to_owned(),
            size_param: None,
            start_page: DEFAULT_START_PAGE,
        }
    }

    /// Cursor pagination with the default parameter name.
    pub fn cursor(cursor_path: impl Into<String>) -> Self {
        Pagination::Cursor {
            cursor_param: DEFAULT_CURSOR_PARAM.to_owned(),
            cursor_path: cursor_path.into(),
        }
    }

    /// `Link` header pagination following `rel="next"`.
    pub fn link_header() -> Self {
        Pagination::LinkHeader {
            rel: DEFAULT_LINK_REL.to_owned(),
        }
    }

    /// Next-URL pagination reading the URL at `next_url_path`.
    pub fn next_url(next_url_path: impl Into<String>) -> Self {
        Pagination::NextUrl {
            next_url_path: next_url_path.into(),
        }
    }

    /// The `pagination_type` value naming this kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Pagination::None => "none",
            Pagination::Offset { .. } => "offset",
            Pagination::Page { .. } => "page",
            Pagination::Cursor { .. } => "cursor",
            Pagination::LinkHeader { .. } => "link_header",
            Pagination::NextUrl { .. } => "next_url",
        }
    }

    /// Validates the configuration: JSONPaths parse, `page_size` > 0, parameter names are
    /// non-empty and distinct, `link_rel` is a single relation type. On failure, returns
    /// the SQL option at fault (`page_size`, `offset_param`, `limit_param`, `page_param`,
    /// `size_param`, `cursor_param`, `cursor_path`, `link_rel`, `next_url_path`) and a
    /// message.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.compile().map(drop)
    }

    /// Validates (as [`Pagination::validate`]) and parses the JSONPath once, for
    /// [`PageWalk::new`]. Do it when the pipeline loads, not at every poll.
    pub fn compile(&self) -> Result<CompiledPagination, (&'static str, String)> {
        let path = match self {
            Pagination::None => None,
            Pagination::Offset {
                page_size,
                offset_param,
                limit_param,
            } => {
                check_page_size(*page_size)?;
                check_name("offset_param", offset_param)?;
                check_name("limit_param", limit_param)?;
                if offset_param == limit_param {
                    return Err((
                        "limit_param",
                        format!("must differ from offset_param (both are `{offset_param}`)"),
                    ));
                }
                None
            }
            Pagination::Page {
                page_size,
                page_param,
                size_param,
                start_page: _,
            } => {
                check_page_size(*page_size)?;
                check_name("page_param", page_param)?;
                if let Some(size_param) = size_param {
                    check_name("size_param", size_param)?;
                    if size_param == page_param {
                        return Err((
                            "size_param",
                            format!("must differ from page_param (both are `{page_param}`)"),
                        ));
                    }
                }
                None
            }
            Pagination::Cursor {
                cursor_param,
                cursor_path,
            } => {
                check_name("cursor_param", cursor_param)?;
                Some(parse_path("cursor_path", cursor_path)?)
            }
            Pagination::LinkHeader { rel } => {
                if rel.trim().is_empty() {
                    return Err(("link_rel", "must not be empty".to_owned()));
                }
                if rel.chars().any(|c| c.is_whitespace() || c == '"') {
                    return Err((
                        "link_rel",
                        format!("must be one relation type such as `next`, not `{rel}`"),
                    ));
                }
                None
            }
            Pagination::NextUrl { next_url_path } => {
                Some(parse_path("next_url_path", next_url_path)?)
            }
        };
        Ok(CompiledPagination {
            config: self.clone(),
            path,
        })
    }
}

fn check_page_size(page_size: u64) -> Result<(), (&'static str, String)> {
    if page_size == 0 {
        Err(("page_size", "must be greater than 0".to_owned()))
    } else {
        Ok(())
    }
}

fn check_name(option: &'static str, value: &str) -> Result<(), (&'static str, String)> {
    if value.trim().is_empty() {
        Err((option, "must not be empty".to_owned()))
    } else {
        Ok(())
    }
}

fn parse_path(option: &'static str, text: &str) -> Result<JsonPath, (&'static str, String)> {
    if text.trim().is_empty() {
        return Err((option, "must not be empty".to_owned()));
    }
    JsonPath::parse(text).map_err(|err| {
        let hint = if text.trim_start().starts_with('$') {
            ""
        } else {
            " (a JSONPath starts with `$`, e.g. `$.meta.next`)"
        };
        (option, format!("invalid JSONPath `{text}`: {err}{hint}"))
    })
}

/// A validated [`Pagination`] with its JSONPath parsed, ready to start walks.
#[derive(Debug, Clone)]
pub struct CompiledPagination {
    config: Pagination,
    /// `cursor_path` or `next_url_path`, parsed.
    path: Option<JsonPath>,
}

impl CompiledPagination {
    /// The configuration this was compiled from.
    pub fn pagination(&self) -> &Pagination {
        &self.config
    }
}

/// What to request for one page.
///
/// Contract with the caller (the polling source):
///
/// * `url == None`: request the configured `endpoint` with the configured `query_params`
///   (both rendered with the request variables), then add [`PageRequest::query`]; a
///   configured parameter of the same name as one in `query` is replaced by it.
/// * `url == Some(u)`: request exactly `u` (link_header and next_url kinds, from the second
///   page on). The configured `endpoint` and `query_params` are **not** used: the server's
///   URL already carries every parameter it wants, and re-adding ours would duplicate or
///   contradict them. `query` is then empty. Method, headers, body and authentication still
///   apply; `u` may point at another host (the server's choice), so whether credentials go
///   there is the caller's policy.
///
/// `page`, `offset` and `cursor` are the values of the request variables `${page}`,
/// `${offset}` and `${cursor}` for this request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageRequest {
    /// Replace the endpoint with this absolute URL (link_header / next_url); `None` = the
    /// configured endpoint.
    pub url: Option<Url>,
    /// Extra query parameters for this page (offset/limit, page/size, cursor), in order.
    pub query: Vec<(String, String)>,
    /// `${page}`: the page number sent (page kind: `start_page`, `start_page + 1`, ...);
    /// for the other kinds the 1-based index of this page in the poll.
    pub page: u64,
    /// `${offset}`: offset kind, the offset sent; page kind, `(page - start_page) *
    /// page_size`; other kinds, the number of records received so far in this poll.
    pub offset: u64,
    /// `${cursor}`: the cursor sent; `None` on the first page (and for non-cursor kinds).
    pub cursor: Option<String>,
}

/// What a walk says after a page arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Request this page next.
    Next(PageRequest),
    /// The poll has every page.
    Done,
    /// `max_pages` pages were walked while the server still had more: the poll stops here
    /// and the caller reports it (the pages walked are still the poll's result).
    MaxPages,
}

/// A page told the walk something it cannot follow; the poll fails and commits nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaginationError {
    /// A cursor already sent (or returned) earlier in this poll came back: the server loops.
    #[error(
        "pagination cycle: page {page} returned the cursor `{}`, already seen in this poll",
        Excerpt(cursor)
    )]
    CursorRepeated {
        /// The repeated cursor.
        cursor: String,
        /// The page (1-based, in this poll) whose response returned it.
        page: u32,
    },
    /// A next-page URL already requested earlier in this poll came back: the server loops.
    #[error(
        "pagination cycle: page {page} points to {}, already requested in this poll",
        Excerpt(url)
    )]
    UrlRepeated {
        /// The repeated URL.
        url: String,
        /// The page (1-based, in this poll) whose response pointed to it.
        page: u32,
    },
    /// The body is not JSON, so the cursor/next URL cannot be read from it.
    #[error("cannot read the next page from the response body: {0}")]
    BadBody(String),
    /// The value at `cursor_path` is an object or an array, not a cursor.
    #[error("bad pagination cursor: {0}")]
    BadCursor(String),
    /// The next page's URL (body or `Link` header) is not a usable http(s) URL.
    #[error("bad next page URL: {0}")]
    BadNextUrl(String),
    /// An offset or page number would overflow a 64-bit counter.
    #[error("pagination `{what}` overflows after page {page}")]
    Overflow {
        /// `offset` or `page`.
        what: &'static str,
        /// The page after which it overflows.
        page: u32,
    },
}

/// Displays at most 200 characters of a server-supplied string.
struct Excerpt<'a>(&'a str);

impl fmt::Display for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 200;
        match self.0.char_indices().nth(MAX) {
            Some((cut, _)) => write!(f, "{}...", &self.0[..cut]),
            None => f.write_str(self.0),
        }
    }
}

/// One poll's walk over pages.
///
/// Create one per poll (and per parent request under fan-out) with [`PageWalk::new`]; send
/// [`PageWalk::first`], then feed every response to [`PageWalk::next`] until it answers
/// something other than [`Step::Next`]. After that (or after an error) the walk is over and
/// `next` keeps answering [`Step::Done`] without counting pages.
#[derive(Debug, Clone)]
pub struct PageWalk {
    pagination: CompiledPagination,
    max_pages: u32,
    pages: u32,
    /// The request for the page in flight.
    current: PageRequest,
    records_so_far: u64,
    seen_cursors: HashSet<String>,
    seen_urls: HashSet<String>,
    finished: bool,
}

impl PageWalk {
    /// Starts a walk bounded by `max_pages` (`0` is taken as 1: the first page is always
    /// requested).
    pub fn new(pagination: &CompiledPagination, max_pages: u32) -> Self {
        let mut walk = PageWalk {
            pagination: pagination.clone(),
            max_pages: max_pages.max(1),
            pages: 0,
            current: PageRequest::default(),
            records_so_far: 0,
            seen_cursors: HashSet::new(),
            seen_urls: HashSet::new(),
            finished: false,
        };
        walk.current = walk.first();
        walk
    }

    /// What to request for the first page.
    pub fn first(&self) -> PageRequest {
        match &self.pagination.config {
            Pagination::Offset {
                page_size,
                offset_param,
                limit_param,
            } => PageRequest {
                url: None,
                query: vec![
                    (offset_param.clone(), "0".to_owned()),
                    (limit_param.clone(), page_size.to_string()),
                ],
                page: 1,
                offset: 0,
                cursor: None,
            },
            Pagination::Page {
                page_size,
                page_param,
                size_param,
                start_page,
            } => page_request(
                page_param,
                size_param.as_deref(),
                *page_size,
                *start_page,
                0,
            ),
            Pagination::None
            | Pagination::Cursor { .. }
            | Pagination::LinkHeader { .. }
            | Pagination::NextUrl { .. } => PageRequest {
                page: 1,
                ..PageRequest::default()
            },
        }
    }

    /// Pages walked so far (responses handed to [`PageWalk::next`]).
    pub fn pages(&self) -> u32 {
        self.pages
    }

    /// The `max_pages` bound of this walk.
    pub fn max_pages(&self) -> u32 {
        self.max_pages
    }

    /// After a page arrived: `url` is the URL that was actually requested (after redirects
    /// is fine), `headers` the response headers, `body` the raw body, `records` how many
    /// records the page decoded to (dead letters included: records the server sent).
    ///
    /// Offset kind: the next offset is the previous one plus `page_size` (what was asked
    /// for), not plus `records`: `records` counts what `json_path` selected, which need not
    /// be the server's unit of offset; a server that sends more than `limit` is still walked
    /// in the steps it was asked for.
    pub fn next(
        &mut self,
        url: &Url,
        headers: &HeaderMap,
        body: &[u8],
        records: usize,
    ) -> Result<Step, PaginationError> {
        if self.finished {
            return Ok(Step::Done);
        }
        self.pages = self.pages.saturating_add(1);
        let result = self.advance(url, headers, body, records);
        match &result {
            Ok(Step::Next(request)) => self.current = request.clone(),
            Ok(Step::Done) => {
                tracing::debug!(pages = self.pages, "pagination complete");
                self.finished = true;
            }
            Ok(Step::MaxPages) => {
                tracing::debug!(pages = self.pages, "pagination stopped at max_pages");
                self.finished = true;
            }
            Err(err) => {
                tracing::debug!(pages = self.pages, error = %err, "pagination failed");
                self.finished = true;
            }
        }
        result
    }

    fn advance(
        &mut self,
        url: &Url,
        headers: &HeaderMap,
        body: &[u8],
        records: usize,
    ) -> Result<Step, PaginationError> {
        let page = self.pages;
        let records_u64 = u64::try_from(records).unwrap_or(u64::MAX);
        self.records_so_far = self.records_so_far.saturating_add(records_u64);
        let follows_urls = matches!(
            self.pagination.config,
            Pagination::LinkHeader { .. } | Pagination::NextUrl { .. }
        );
        if follows_urls {
            // Both what we asked for and where the request ended up count as visited.
            if let Some(asked) = &self.current.url {
                self.seen_urls.insert(url_key(asked));
            }
            self.seen_urls.insert(url_key(url));
        }
        // An empty page ends a walk that counts its way through the list; a walk that is
        // told where the next page is follows an empty page's link when it names a page
        // not seen yet (an API may filter a page down to nothing mid-list).
        let empty = records == 0;
        if empty && !follows_urls && !matches!(self.pagination.config, Pagination::Cursor { .. }) {
            return Ok(Step::Done);
        }
        let next = match &self.pagination.config {
            Pagination::None => return Ok(Step::Done),
            Pagination::Offset {
                page_size,
                offset_param,
                limit_param,
            } => {
                if records_u64 < *page_size {
                    return Ok(Step::Done);
                }
                let offset = self.current.offset.checked_add(*page_size).ok_or(
                    PaginationError::Overflow {
                        what: "offset",
                        page,
                    },
                )?;
                PageRequest {
                    url: None,
                    query: vec![
                        (offset_param.clone(), offset.to_string()),
                        (limit_param.clone(), page_size.to_string()),
                    ],
                    page: self.current.page.saturating_add(1),
                    offset,
                    cursor: None,
                }
            }
            Pagination::Page {
                page_size,
                page_param,
                size_param,
                ..
            } => {
                if records_u64 < *page_size {
                    return Ok(Step::Done);
                }
                let number = self
                    .current
                    .page
                    .checked_add(1)
                    .ok_or(PaginationError::Overflow { what: "page", page })?;
                let offset = self.current.offset.checked_add(*page_size).ok_or(
                    PaginationError::Overflow {
                        what: "offset",
                        page,
                    },
                )?;
                page_request(
                    page_param,
                    size_param.as_deref(),
                    *page_size,
                    number,
                    offset,
                )
            }
            Pagination::Cursor {
                cursor_param,
                cursor_path,
            } => {
                let value = match self.read_path(body, "cursor_path", cursor_path) {
                    Err(_) if empty => return Ok(Step::Done),
                    read => read?,
                };
                let cursor = match cursor_value(value, cursor_path) {
                    Err(_) if empty => return Ok(Step::Done),
                    Ok(None) => return Ok(Step::Done),
                    found => found?.expect("matched None above"),
                };
                if !self.seen_cursors.insert(cursor.clone()) {
                    if empty {
                        // An empty page handing back a cursor already followed: the end.
                        return Ok(Step::Done);
                    }
                    return Err(PaginationError::CursorRepeated { cursor, page });
                }
                PageRequest {
                    url: None,
                    query: vec![(cursor_param.clone(), cursor.clone())],
                    page: u64::from(page) + 1,
                    offset: self.records_so_far,
                    cursor: Some(cursor),
                }
            }
            Pagination::LinkHeader { rel } => {
                let Some(target) = find_link(headers, rel) else {
                    return Ok(Step::Done);
                };
                match self.follow(url, &target, page, empty)? {
                    Some(request) => request,
                    None => return Ok(Step::Done),
                }
            }
            Pagination::NextUrl { next_url_path } => {
                let value = match self.read_path(body, "next_url_path", next_url_path) {
                    Err(_) if empty => return Ok(Step::Done),
                    read => read?,
                };
                let target = match value {
                    None | Some(Value::Null) => return Ok(Step::Done),
                    Some(Value::String(text)) if text.trim().is_empty() => {
                        return Ok(Step::Done);
                    }
                    Some(Value::String(text)) => text,
                    Some(_) if empty => return Ok(Step::Done),
                    Some(other) => {
                        return Err(PaginationError::BadNextUrl(format!(
                            "next_url_path `{next_url_path}` holds {}, not a string",
                            json_kind(&other)
                        )));
                    }
                };
                match self.follow(url, &target, page, empty)? {
                    Some(request) => request,
                    None => return Ok(Step::Done),
                }
            }
        };
        if self.pages >= self.max_pages {
            return Ok(Step::MaxPages);
        }
        Ok(Step::Next(next))
    }

    /// Reads the first node at the compiled JSONPath, `None` when nothing matches.
    fn read_path(
        &self,
        body: &[u8],
        option: &str,
        path_text: &str,
    ) -> Result<Option<Value>, PaginationError> {
        let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
        let document: Value = serde_json::from_slice(body).map_err(|err| {
            PaginationError::BadBody(format!(
                "the body is not JSON, so {option} `{path_text}` cannot be read ({err})"
            ))
        })?;
        let Some(path) = &self.pagination.path else {
            return Ok(None);
        };
        Ok(path.query(&document).first().cloned())
    }

    /// The request for the next URL `target` named by the page at `url`. After an empty
    /// page, a URL already visited (or one that is not usable) is the end of the list
    /// (`None`); after a page with records it is a cycle (or a bad URL), an error.
    fn follow(
        &mut self,
        url: &Url,
        target: &str,
        page: u32,
        empty: bool,
    ) -> Result<Option<PageRequest>, PaginationError> {
        match resolve_next(url, target) {
            Ok(next) if empty && self.seen_urls.contains(&url_key(&next)) => Ok(None),
            Err(_) if empty => Ok(None),
            next => self.url_request(next?, page).map(Some),
        }
    }

    /// Builds the request for a next URL, refusing one already visited in this poll.
    fn url_request(&mut self, next: Url, page: u32) -> Result<PageRequest, PaginationError> {
        if !self.seen_urls.insert(url_key(&next)) {
            return Err(PaginationError::UrlRepeated {
                url: next.to_string(),
                page,
            });
        }
        Ok(PageRequest {
            url: Some(next),
            query: Vec::new(),
            page: u64::from(page) + 1,
            offset: self.records_so_far,
            cursor: None,
        })
    }
}

fn page_request(
    page_param: &str,
    size_param: Option<&str>,
    page_size: u64,
    number: u64,
    offset: u64,
) -> PageRequest {
    let mut query = vec![(page_param.to_owned(), number.to_string())];
    if let Some(size_param) = size_param {
        query.push((size_param.to_owned(), page_size.to_string()));
    }
    PageRequest {
        url: None,
        query,
        page: number,
        offset,
        cursor: None,
    }
}

/// The cursor a JSON value stands for: strings as they are, numbers and booleans as their
/// JSON text (`42`, not `"42"`); missing, `null` and blank strings mean "no next page".
fn cursor_value(value: Option<Value>, path: &str) -> Result<Option<String>, PaginationError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        Some(Value::Bool(flag)) => Ok(Some(flag.to_string())),
        Some(other) => Err(PaginationError::BadCursor(format!(
            "cursor_path `{path}` holds {}, not a string or number",
            json_kind(&other)
        ))),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Resolves a next-page reference against the URL that was requested. The fragment is
/// dropped (it is never sent), and only http(s) URLs are followed.
fn resolve_next(base: &Url, target: &str) -> Result<Url, PaginationError> {
    let mut next = base.join(target.trim()).map_err(|err| {
        PaginationError::BadNextUrl(format!("`{}` is not a URL: {err}", Excerpt(target)))
    })?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(PaginationError::BadNextUrl(format!(
            "`{}` is not an http(s) URL",
            Excerpt(target)
        )));
    }
    next.set_fragment(None);
    Ok(next)
}

/// The form in which URLs are compared for the cycle guard.
fn url_key(url: &Url) -> String {
    let mut url = url.clone();
    url.set_fragment(None);
    url.into()
}

/// One link of an RFC 8288 `Link` header: `<target>; name=value; ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkValue {
    /// The URI reference between `<` and `>`, unresolved.
    pub target: String,
    /// The parameters in order, names lowercased, quoted values unescaped.
    pub params: Vec<(String, String)>,
}

impl LinkValue {
    /// The relation types of the link: the first `rel` parameter split on whitespace
    /// (RFC 8288 §3.3: later `rel` parameters are ignored).
    pub fn rels(&self) -> impl Iterator<Item = &str> {
        self.params
            .iter()
            .find(|(name, _)| name == "rel")
            .map(|(_, value)| value.split_ascii_whitespace())
            .into_iter()
            .flatten()
    }

    /// Whether one of the link's relation types is `rel` (ASCII case-insensitive).
    pub fn has_rel(&self, rel: &str) -> bool {
        self.rels().any(|r| r.eq_ignore_ascii_case(rel))
    }
}

/// The target of the first link with relation type `rel` across all `Link` headers, in
/// order. An empty target (`<>`) counts as no link.
pub fn find_link(headers: &HeaderMap, rel: &str) -> Option<String> {
    headers
        .get_all(LINK)
        .iter()
        .flat_map(|value| parse_links(&String::from_utf8_lossy(value.as_bytes())))
        .find(|link| link.has_rel(rel))
        .map(|link| link.target)
        .filter(|target| !target.is_empty())
}

/// Parses one `Link` header value (RFC 8288 §3) into its links. Commas and semicolons inside
/// `<...>` and quoted strings are part of them; a malformed link is skipped up to the next
/// top-level comma, never failing the whole header.
pub fn parse_links(input: &str) -> Vec<LinkValue> {
    let bytes = input.as_bytes();
    let len = bytes.len();
    let mut links = Vec::new();
    let mut i = 0;
    loop {
        while i < len && (is_ows(bytes[i]) || bytes[i] == b',') {
            i += 1;
        }
        if i >= len {
            break;
        }
        if bytes[i] != b'<' {
            i = skip_link(bytes, i);
            continue;
        }
        let start = i + 1;
        let Some(end) = bytes[start..].iter().position(|&b| b == b'>') else {
            break;
        };
        let target = input[start..start + end].trim().to_owned();
        i = start + end + 1;
        let mut params = Vec::new();
        loop {
            skip_ows(bytes, &mut i);
            if i >= len || bytes[i] == b',' {
                break;
            }
            if bytes[i] != b';' {
                i = skip_link(bytes, i);
                break;
            }
            i += 1;
            skip_ows(bytes, &mut i);
            let name_start = i;
            while i < len && is_tchar(bytes[i]) {
                i += 1;
            }
            let name = input[name_start..i].to_ascii_lowercase();
            skip_ows(bytes, &mut i);
            let mut value = String::new();
            if i < len && bytes[i] == b'=' {
                i += 1;
                skip_ows(bytes, &mut i);
                if i < len && bytes[i] == b'"' {
                    i += 1;
                    value = read_quoted(input, &mut i);
                } else {
                    let value_start = i;
                    while i < len && !matches!(bytes[i], b';' | b',') && !is_ows(bytes[i]) {
                        i += 1;
                    }
                    value = input[value_start..i].to_owned();
                }
            }
            if !name.is_empty() {
                params.push((name, value));
            }
        }
        links.push(LinkValue { target, params });
    }
    links
}

/// Reads a quoted string whose opening quote is just before `i`; leaves `i` after the
/// closing quote (or at the end of an unterminated string).
fn read_quoted(input: &str, i: &mut usize) -> String {
    let mut value = String::new();
    let mut chars = input[*i..].char_indices();
    let base = *i;
    *i = input.len();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => {
                *i = base + at + 1;
                break;
            }
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    value.push(escaped);
                }
            }
            _ => value.push(c),
        }
    }
    value
}

/// Index just past the next comma that is outside `<...>` and quoted strings.
fn skip_link(bytes: &[u8], mut i: usize) -> usize {
    let mut quoted = false;
    let mut bracketed = false;
    while i < bytes.len() {
        let b = bytes[i];
        if quoted {
            match b {
                b'\\' => i += 1,
                b'"' => quoted = false,
                _ => {}
            }
        } else if bracketed {
            if b == b'>' {
                bracketed = false;
            }
        } else {
            match b {
                b'"' => quoted = true,
                b'<' => bracketed = true,
                b',' => return i + 1,
                _ => {}
            }
        }
        i += 1;
    }
    bytes.len()
}

fn is_ows(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn skip_ows(bytes: &[u8], i: &mut usize) {
    while *i < bytes.len() && is_ows(bytes[*i]) {
        *i += 1;
    }
}

/// RFC 9110 token characters (a parameter name such as `rel` or RFC 8187's `title*`).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

#[cfg(test)]
mod tests;
