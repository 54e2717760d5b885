//! Tests of the pagination walk: each kind's first request and progression, every stop
//! rule, `max_pages`, `Link` header parsing and the cycle guards. Pure: no HTTP server.

use super::*;
use reqwest::header::HeaderValue;

fn url(text: &str) -> Url {
    Url::parse(text).unwrap()
}

fn no_headers() -> HeaderMap {
    HeaderMap::new()
}

fn links(values: &[&str]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for value in values {
        headers.append(LINK, HeaderValue::from_str(value).unwrap());
    }
    headers
}

fn walk(pagination: Pagination, max_pages: u32) -> PageWalk {
    PageWalk::new(&pagination.compile().unwrap(), max_pages)
}

fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn next_request(step: Step) -> PageRequest {
    match step {
        Step::Next(request) => request,
        other => panic!("expected Step::Next, got {other:?}"),
    }
}

const ENDPOINT: &str = "https://api.example.com/items?page=1";

// ---------------------------------------------------------------- validation

#[test]
fn validate_accepts_defaults() {
    for p in [
        Pagination::None,
        Pagination::offset(100),
        Pagination::page(50),
        Pagination::cursor("$.meta.next_cursor"),
        Pagination::link_header(),
        Pagination::next_url("$.next"),
    ] {
        assert_eq!(p.validate(), Ok(()), "{}", p.kind());
    }
}

#[test]
fn validate_names_the_option_at_fault() {
    assert_eq!(Pagination::offset(0).validate().unwrap_err().0, "page_size");
    assert_eq!(Pagination::page(0).validate().unwrap_err().0, "page_size");
    assert_eq!(
        Pagination::cursor("$.meta[").validate().unwrap_err().0,
        "cursor_path"
    );
    assert_eq!(
        Pagination::cursor("").validate().unwrap_err().0,
        "cursor_path"
    );
    let err = Pagination::next_url("next").validate().unwrap_err();
    assert_eq!(err.0, "next_url_path");
    assert!(err.1.contains("starts with `$`"), "{}", err.1);
    let p = Pagination::Cursor {
        cursor_param: " ".into(),
        cursor_path: "$.next".into(),
    };
    assert_eq!(p.validate().unwrap_err().0, "cursor_param");
    let p = Pagination::Offset {
        page_size: 10,
        offset_param: "".into(),
        limit_param: "limit".into(),
    };
    assert_eq!(p.validate().unwrap_err().0, "offset_param");
    let p = Pagination::Offset {
        page_size: 10,
        offset_param: "n".into(),
        limit_param: "n".into(),
    };
    assert_eq!(p.validate().unwrap_err().0, "limit_param");
    let p = Pagination::Page {
        page_size: 10,
        page_param: "page".into(),
        size_param: Some("".into()),
        start_page: 1,
    };
    assert_eq!(p.validate().unwrap_err().0, "size_param");
    let p = Pagination::Page {
        page_size: 10,
        page_param: "".into(),
        size_param: None,
        start_page: 1,
    };
    assert_eq!(p.validate().unwrap_err().0, "page_param");
    let p = Pagination::LinkHeader { rel: "".into() };
    assert_eq!(p.validate().unwrap_err().0, "link_rel");
    let p = Pagination::LinkHeader {
        rel: "next last".into(),
    };
    assert_eq!(p.validate().unwrap_err().0, "link_rel");
}

// ---------------------------------------------------------------- none

#[test]
fn none_is_one_page() {
    let mut w = walk(Pagination::None, 1000);
    assert_eq!(
        w.first(),
        PageRequest {
            url: None,
            query: vec![],
            page: 1,
            offset: 0,
            cursor: None
        }
    );
    let step = w.next(&url(ENDPOINT), &no_headers(), b"[1,2]", 2).unwrap();
    assert_eq!(step, Step::Done);
    assert_eq!(w.pages(), 1);
}

// ---------------------------------------------------------------- offset

#[test]
fn offset_first_and_progression() {
    let mut w = walk(Pagination::offset(100), 1000);
    assert_eq!(
        w.first(),
        PageRequest {
            url: None,
            query: q(&[("offset", "0"), ("limit", "100")]),
            page: 1,
            offset: 0,
            cursor: None
        }
    );
    let u = url("https://api.example.com/data?offset=0&limit=100");
    let second = next_request(w.next(&u, &no_headers(), b"", 100).unwrap());
    assert_eq!(
        second,
        PageRequest {
            url: None,
            query: q(&[("offset", "100"), ("limit", "100")]),
            page: 2,
            offset: 100,
            cursor: None
        }
    );
    let third = next_request(w.next(&u, &no_headers(), b"", 100).unwrap());
    assert_eq!(third.query, q(&[("offset", "200"), ("limit", "100")]));
    assert_eq!((third.page, third.offset), (3, 200));
    // A short page is the last.
    assert_eq!(w.next(&u, &no_headers(), b"", 42).unwrap(), Step::Done);
    assert_eq!(w.pages(), 3);
}

#[test]
fn offset_custom_names_and_empty_page_stops() {
    let p = Pagination::Offset {
        page_size: 2,
        offset_param: "skip".into(),
        limit_param: "take".into(),
    };
    let mut w = walk(p, 1000);
    assert_eq!(w.first().query, q(&[("skip", "0"), ("take", "2")]));
    let u = url(ENDPOINT);
    let second = next_request(w.next(&u, &no_headers(), b"", 2).unwrap());
    assert_eq!(second.query, q(&[("skip", "2"), ("take", "2")]));
    assert_eq!(w.next(&u, &no_headers(), b"[]", 0).unwrap(), Step::Done);
    assert_eq!(w.pages(), 2);
}

#[test]
fn offset_advances_by_page_size_even_when_server_sends_more() {
    let mut w = walk(Pagination::offset(10), 1000);
    let second = next_request(w.next(&url(ENDPOINT), &no_headers(), b"", 25).unwrap());
    assert_eq!(second.offset, 10);
    assert_eq!(second.query, q(&[("offset", "10"), ("limit", "10")]));
}

// ---------------------------------------------------------------- page

#[test]
fn page_first_and_progression_with_size_param() {
    let p = Pagination::Page {
        page_size: 50,
        page_param: "page".into(),
        size_param: Some("per_page".into()),
        start_page: 1,
    };
    let mut w = walk(p, 1000);
    assert_eq!(
        w.first(),
        PageRequest {
            url: None,
            query: q(&[("page", "1"), ("per_page", "50")]),
            page: 1,
            offset: 0,
            cursor: None
        }
    );
    let u = url(ENDPOINT);
    let second = next_request(w.next(&u, &no_headers(), b"", 50).unwrap());
    assert_eq!(
        second,
        PageRequest {
            url: None,
            query: q(&[("page", "2"), ("per_page", "50")]),
            page: 2,
            offset: 50,
            cursor: None
        }
    );
    let third = next_request(w.next(&u, &no_headers(), b"", 50).unwrap());
    assert_eq!(third.query, q(&[("page", "3"), ("per_page", "50")]));
    assert_eq!(w.next(&u, &no_headers(), b"", 49).unwrap(), Step::Done);
    assert_eq!(w.pages(), 3);
}

#[test]
fn page_without_size_param_and_zero_based() {
    let p = Pagination::Page {
        page_size: 3,
        page_param: "p".into(),
        size_param: None,
        start_page: 0,
    };
    let mut w = walk(p, 1000);
    assert_eq!(w.first().query, q(&[("p", "0")]));
    assert_eq!(w.first().page, 0);
    let second = next_request(w.next(&url(ENDPOINT), &no_headers(), b"", 3).unwrap());
    assert_eq!(second.query, q(&[("p", "1")]));
    assert_eq!((second.page, second.offset), (1, 3));
    assert_eq!(
        w.next(&url(ENDPOINT), &no_headers(), b"", 0).unwrap(),
        Step::Done
    );
}

// ---------------------------------------------------------------- max_pages

#[test]
fn max_pages_while_more_follow() {
    let mut w = walk(Pagination::page(10), 3);
    let u = url(ENDPOINT);
    next_request(w.next(&u, &no_headers(), b"", 10).unwrap());
    next_request(w.next(&u, &no_headers(), b"", 10).unwrap());
    assert_eq!(w.next(&u, &no_headers(), b"", 10).unwrap(), Step::MaxPages);
    assert_eq!(w.pages(), 3);
    // The walk is over: further calls neither count nor continue.
    assert_eq!(w.next(&u, &no_headers(), b"", 10).unwrap(), Step::Done);
    assert_eq!(w.pages(), 3);
}

#[test]
fn last_page_exactly_at_max_pages_is_done() {
    let mut w = walk(Pagination::page(10), 3);
    let u = url(ENDPOINT);
    next_request(w.next(&u, &no_headers(), b"", 10).unwrap());
    next_request(w.next(&u, &no_headers(), b"", 10).unwrap());
    assert_eq!(w.next(&u, &no_headers(), b"", 7).unwrap(), Step::Done);

    let mut w = walk(Pagination::cursor("$.next"), 2);
    next_request(w.next(&u, &no_headers(), br#"{"next":"a"}"#, 1).unwrap());
    assert_eq!(
        w.next(&u, &no_headers(), br#"{"next":null}"#, 1).unwrap(),
        Step::Done
    );
}

#[test]
fn max_pages_one_and_zero() {
    let mut w = walk(Pagination::cursor("$.next"), 1);
    let step = w
        .next(&url(ENDPOINT), &no_headers(), br#"{"next":"a"}"#, 5)
        .unwrap();
    assert_eq!(step, Step::MaxPages);
    let w = walk(Pagination::cursor("$.next"), 0);
    assert_eq!(w.max_pages(), 1);
}

// ---------------------------------------------------------------- cursor

#[test]
fn cursor_first_and_progression() {
    let p = Pagination::Cursor {
        cursor_param: "after".into(),
        cursor_path: "$.meta.next_cursor".into(),
    };
    let mut w = walk(p, 1000);
    assert_eq!(
        w.first(),
        PageRequest {
            url: None,
            query: vec![],
            page: 1,
            offset: 0,
            cursor: None
        }
    );
    let u = url(ENDPOINT);
    let body = br#"{"data":[1,2,3],"meta":{"next_cursor":"abc=="}}"#;
    let second = next_request(w.next(&u, &no_headers(), body, 3).unwrap());
    assert_eq!(
        second,
        PageRequest {
            url: None,
            query: q(&[("after", "abc==")]),
            page: 2,
            offset: 3,
            cursor: Some("abc==".into())
        }
    );
    let body = br#"{"data":[4,5],"meta":{"next_cursor":"def"}}"#;
    let third = next_request(w.next(&u, &no_headers(), body, 2).unwrap());
    assert_eq!(third.query, q(&[("after", "def")]));
    assert_eq!((third.page, third.offset), (3, 5));
    let body = br#"{"data":[6],"meta":{}}"#;
    assert_eq!(w.next(&u, &no_headers(), body, 1).unwrap(), Step::Done);
    assert_eq!(w.pages(), 3);
}

#[test]
fn cursor_no_next_forms_are_done() {
    let u = url(ENDPOINT);
    for body in [
        &br#"{"meta":{"next_cursor":null}}"#[..],
        br#"{"meta":{"next_cursor":""}}"#,
        br#"{"meta":{"next_cursor":"  "}}"#,
        br#"{"meta":{}}"#,
        br#"{}"#,
        br#"[1,2]"#,
    ] {
        let mut w = walk(Pagination::cursor("$.meta.next_cursor"), 1000);
        assert_eq!(
            w.next(&u, &no_headers(), body, 2).unwrap(),
            Step::Done,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn cursor_empty_page_with_a_new_cursor_is_followed() {
    // Issue 9: an empty page mid-list (an API filtering a page down to nothing) is not
    // the end while it names a next page; stopping there lost the pages after it.
    let mut w = walk(Pagination::cursor("$.next"), 1000);
    let step = w
        .next(&url(ENDPOINT), &no_headers(), br#"{"next":"x"}"#, 0)
        .unwrap();
    assert!(
        matches!(&step, Step::Next(r) if r.cursor.as_deref() == Some("x")),
        "{step:?}"
    );
    // An empty page handing back a cursor already followed is the end, not a cycle ...
    assert_eq!(
        w.next(&url(ENDPOINT), &no_headers(), br#"{"next":"x"}"#, 0)
            .unwrap(),
        Step::Done
    );
    // ... and so is an empty page whose cursor cannot be read.
    let mut w = walk(Pagination::cursor("$.next"), 1000);
    assert_eq!(
        w.next(&url(ENDPOINT), &no_headers(), b"", 0).unwrap(),
        Step::Done
    );
    let mut w = walk(Pagination::cursor("$.next"), 1000);
    assert_eq!(
        w.next(&url(ENDPOINT), &no_headers(), br#"{"next":{"a":1}}"#, 0)
            .unwrap(),
        Step::Done
    );
    // Offset and page walks have no next page to follow: an empty page ends them.
    let mut w = walk(Pagination::offset(10), 1000);
    assert_eq!(
        w.next(&url(ENDPOINT), &no_headers(), b"[]", 0).unwrap(),
        Step::Done
    );
}

#[test]
fn next_url_empty_page_with_a_new_url_is_followed_and_an_old_one_ends() {
    let mut w = walk(Pagination::next_url("$.next"), 1000);
    let step = w
        .next(
            &url(ENDPOINT),
            &no_headers(),
            br#"{"next":"/items?page=2"}"#,
            0,
        )
        .unwrap();
    let Step::Next(second) = step else {
        panic!("{step:?}")
    };
    let second = second.url.unwrap();
    assert_eq!(
        w.next(&second, &no_headers(), br#"{"next":"/items?page=2"}"#, 0)
            .unwrap(),
        Step::Done
    );
}

#[test]
fn cursor_numeric_values_are_sent_without_quotes() {
    let u = url(ENDPOINT);
    let mut w = walk(Pagination::cursor("$.next"), 1000);
    let second = next_request(w.next(&u, &no_headers(), br#"{"next":42}"#, 1).unwrap());
    assert_eq!(second.query, q(&[("cursor", "42")]));
    assert_eq!(second.cursor.as_deref(), Some("42"));
    let third = next_request(
        w.next(&u, &no_headers(), br#"{"next":18446744073709551615}"#, 1)
            .unwrap(),
    );
    assert_eq!(third.cursor.as_deref(), Some("18446744073709551615"));
    let fourth = next_request(w.next(&u, &no_headers(), br#"{"next":-1.5}"#, 1).unwrap());
    assert_eq!(fourth.cursor.as_deref(), Some("-1.5"));
    // The number 42 and the string "42" are the same cursor on the wire.
    let err = w
        .next(&u, &no_headers(), br#"{"next":"42"}"#, 1)
        .unwrap_err();
    assert_eq!(
        err,
        PaginationError::CursorRepeated {
            cursor: "42".into(),
            page: 4
        }
    );
}

#[test]
fn cursor_object_value_is_an_error() {
    let mut w = walk(Pagination::cursor("$.next"), 1000);
    let err = w
        .next(&url(ENDPOINT), &no_headers(), br#"{"next":{"a":1}}"#, 1)
        .unwrap_err();
    assert!(matches!(err, PaginationError::BadCursor(_)), "{err:?}");
}

#[test]
fn cursor_repeating_immediately_fails() {
    let u = url(ENDPOINT);
    let mut w = walk(Pagination::cursor("$.next"), 1000);
    next_request(w.next(&u, &no_headers(), br#"{"next":"A"}"#, 1).unwrap());
    let err = w
        .next(&u, &no_headers(), br#"{"next":"A"}"#, 1)
        .unwrap_err();
    assert_eq!(
        err,
        PaginationError::CursorRepeated {
            cursor: "A".into(),
            page: 2
        }
    );
    assert_eq!(
        err.to_string(),
        "pagination cycle: page 2 returned the cursor `A`, already seen in this poll"
    );
    // The failed walk is over.
    assert_eq!(
        w.next(&u, &no_headers(), br#"{"next":"B"}"#, 1).unwrap(),
        Step::Done
    );
}

#[test]
fn cursor_cycle_fails() {
    let u = url(ENDPOINT);
    let mut w = walk(Pagination::cursor("$.next"), 1000);
    next_request(w.next(&u, &no_headers(), br#"{"next":"A"}"#, 1).unwrap());
    next_request(w.next(&u, &no_headers(), br#"{"next":"B"}"#, 1).unwrap());
    let err = w
        .next(&u, &no_headers(), br#"{"next":"A"}"#, 1)
        .unwrap_err();
    assert_eq!(
        err,
        PaginationError::CursorRepeated {
            cursor: "A".into(),
            page: 3
        }
    );
}

#[test]
fn cursor_repeat_at_max_pages_is_still_an_error() {
    let u = url(ENDPOINT);
    let mut w = walk(Pagination::cursor("$.next"), 2);
    next_request(w.next(&u, &no_headers(), br#"{"next":"A"}"#, 1).unwrap());
    assert!(w.next(&u, &no_headers(), br#"{"next":"A"}"#, 1).is_err());
}

#[test]
fn cursor_body_not_json_is_bad_body() {
    let mut w = walk(Pagination::cursor("$.next"), 1000);
    let err = w
        .next(&url(ENDPOINT), &no_headers(), b"id,name\n1,a\n", 1)
        .unwrap_err();
    match err {
        PaginationError::BadBody(message) => {
            assert!(message.contains("cursor_path `$.next`"), "{message}")
        }
        other => panic!("expected BadBody, got {other:?}"),
    }
}

#[test]
fn cursor_body_with_bom_is_read() {
    let mut w = walk(Pagination::cursor("$.next"), 1000);
    let step = w
        .next(
            &url(ENDPOINT),
            &no_headers(),
            b"\xEF\xBB\xBF{\"next\":\"z\"}",
            1,
        )
        .unwrap();
    assert_eq!(next_request(step).cursor.as_deref(), Some("z"));
}

#[test]
fn cursor_first_match_of_a_multi_match_path() {
    let mut w = walk(Pagination::cursor("$..next"), 1000);
    let body = br#"{"a":{"next":"first"},"b":{"next":"second"}}"#;
    let step = w.next(&url(ENDPOINT), &no_headers(), body, 1).unwrap();
    assert_eq!(next_request(step).cursor.as_deref(), Some("first"));
}

// ---------------------------------------------------------------- link header

#[test]
fn link_header_first_and_progression() {
    let mut w = walk(Pagination::link_header(), 1000);
    assert_eq!(
        w.first(),
        PageRequest {
            url: None,
            query: vec![],
            page: 1,
            offset: 0,
            cursor: None
        }
    );
    let u1 = url("https://api.example.com/items?per_page=2");
    let h = links(&[
        r#"<https://api.example.com/items?per_page=2&page=2>; rel="next", <https://api.example.com/items?per_page=2&page=5>; rel="last""#,
    ]);
    let second = next_request(w.next(&u1, &h, b"", 2).unwrap());
    assert_eq!(
        second,
        PageRequest {
            url: Some(url("https://api.example.com/items?per_page=2&page=2")),
            query: vec![],
            page: 2,
            offset: 2,
            cursor: None
        }
    );
    let u2 = second.url.unwrap();
    let h = links(&[r#"<https://api.example.com/items?per_page=2&page=1>; rel="prev""#]);
    assert_eq!(w.next(&u2, &h, b"", 2).unwrap(), Step::Done);
    assert_eq!(w.pages(), 2);
}

#[test]
fn link_header_no_header_is_done_and_an_empty_page_follows_a_new_link() {
    let u = url(ENDPOINT);
    let mut w = walk(Pagination::link_header(), 1000);
    assert_eq!(w.next(&u, &no_headers(), b"", 3).unwrap(), Step::Done);
    let mut w = walk(Pagination::link_header(), 1000);
    assert_eq!(w.next(&u, &no_headers(), b"", 0).unwrap(), Step::Done);
    // Issue 9: an empty page that links onwards is not the end of the list.
    let mut w = walk(Pagination::link_header(), 1000);
    let h = links(&[r#"</items?page=2>; rel="next""#]);
    let step = w.next(&u, &h, b"", 0).unwrap();
    let Step::Next(second) = step else {
        panic!("{step:?}")
    };
    let second = second.url.unwrap();
    // An empty page linking back to a page already walked ends the walk.
    let back = links(&[r#"</items?page=2>; rel="next""#]);
    assert_eq!(w.next(&second, &back, b"", 0).unwrap(), Step::Done);
}

#[test]
fn link_header_relative_urls_resolve_against_the_request() {
    let u = url("https://api.example.com/v1/items?page=1");
    let cases = [
        (
            r#"</items?page=2>; rel="next""#,
            "https://api.example.com/items?page=2",
        ),
        (
            r#"<?page=2>; rel="next""#,
            "https://api.example.com/v1/items?page=2",
        ),
        (
            r#"<more?page=2>; rel=next"#,
            "https://api.example.com/v1/more?page=2",
        ),
        (r#"<https://other/x>; rel="next""#, "https://other/x"),
        (
            r#"<//cdn.example.com/p2>; rel="next""#,
            "https://cdn.example.com/p2",
        ),
        (
            r#"<?page=2#frag>; rel="next""#,
            "https://api.example.com/v1/items?page=2",
        ),
    ];
    for (header, expected) in cases {
        let mut w = walk(Pagination::link_header(), 1000);
        let step = w.next(&u, &links(&[header]), b"", 1).unwrap();
        assert_eq!(next_request(step).url, Some(url(expected)), "{header}");
    }
}

#[test]
fn link_header_several_rels_in_one_header_and_rel_lists() {
    let u = url(ENDPOINT);
    let h = links(&[
        r#"<https://a/first>; rel="first", <https://a/p3>; rel="next last", <https://a/p1>; rel="prev""#,
    ]);
    let mut w = walk(Pagination::link_header(), 1000);
    let step = w.next(&u, &h, b"", 1).unwrap();
    assert_eq!(next_request(step).url, Some(url("https://a/p3")));

    // A configured rel other than next, matched case-insensitively.
    let p = Pagination::LinkHeader { rel: "Last".into() };
    let mut w = walk(p, 1000);
    let step = w.next(&u, &h, b"", 1).unwrap();
    assert_eq!(next_request(step).url, Some(url("https://a/p3")));

    let h = links(&[r#"<https://a/p2>; REL="NEXT""#]);
    let mut w = walk(Pagination::link_header(), 1000);
    let step = w.next(&u, &h, b"", 1).unwrap();
    assert_eq!(next_request(step).url, Some(url("https://a/p2")));
}

#[test]
fn link_header_several_headers() {
    let u = url(ENDPOINT);
    let h = links(&[
        r#"<https://a/p1>; rel="prev""#,
        r#"<https://a/last>; rel=last, <https://a/p3>; rel=next"#,
    ]);
    let mut w = walk(Pagination::link_header(), 1000);
    let step = w.next(&u, &h, b"", 1).unwrap();
    assert_eq!(next_request(step).url, Some(url("https://a/p3")));
}

#[test]
fn link_header_quoted_commas_and_other_params() {
    let u = url(ENDPOINT);
    let h = links(&[
        r#"<https://a/p1>; title="Page 1, \"older\"; see next"; rel="prev"; type="text/html", <https://a/p3?x=1,2;y>; title="next, please"; rel="next""#,
    ]);
    let mut w = walk(Pagination::link_header(), 1000);
    let step = w.next(&u, &h, b"", 1).unwrap();
    assert_eq!(next_request(step).url, Some(url("https://a/p3?x=1,2;y")));
}

#[test]
fn link_header_ignores_a_malformed_link() {
    let u = url(ENDPOINT);
    let h = links(&[r#"garbage; rel="next", <https://a/p2>; rel="next""#]);
    let mut w = walk(Pagination::link_header(), 1000);
    let step = w.next(&u, &h, b"", 1).unwrap();
    assert_eq!(next_request(step).url, Some(url("https://a/p2")));
}

#[test]
fn link_header_url_cycle_fails() {
    let mut w = walk(Pagination::link_header(), 1000);
    let u1 = url("https://a/items");
    let step = w.next(&u1, &links(&[r#"</items?page=2>; rel="next""#]), b"", 1);
    let u2 = next_request(step.unwrap()).url.unwrap();
    // Page 2 points back to page 1 (the configured endpoint).
    let err = w
        .next(&u2, &links(&[r#"</items>; rel="next""#]), b"", 1)
        .unwrap_err();
    assert_eq!(
        err,
        PaginationError::UrlRepeated {
            url: "https://a/items".into(),
            page: 2
        }
    );
}

#[test]
fn link_header_pointing_to_itself_fails() {
    let mut w = walk(Pagination::link_header(), 1000);
    let u = url("https://a/items?page=1");
    let err = w
        .next(&u, &links(&[r#"<?page=1>; rel="next""#]), b"", 1)
        .unwrap_err();
    assert!(
        matches!(err, PaginationError::UrlRepeated { page: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn parse_links_details() {
    let parsed = parse_links(
        r##"<https://a/b>; rel="next last"; title*=UTF-8'de'n%c3%a4chste, <x>;rel=prev;anchor="#it""##,
    );
    assert_eq!(
        parsed,
        vec![
            LinkValue {
                target: "https://a/b".into(),
                params: vec![
                    ("rel".into(), "next last".into()),
                    ("title*".into(), "UTF-8'de'n%c3%a4chste".into()),
                ],
            },
            LinkValue {
                target: "x".into(),
                params: vec![
                    ("rel".into(), "prev".into()),
                    ("anchor".into(), "#it".into())
                ],
            },
        ]
    );
    assert_eq!(parsed[0].rels().collect::<Vec<_>>(), vec!["next", "last"]);
    // Only the first rel parameter counts.
    let parsed = parse_links(r#"<x>; rel=prev; rel=next"#);
    assert!(!parsed[0].has_rel("next"));
    // Unterminated and empty input never panic.
    assert_eq!(parse_links(""), vec![]);
    assert_eq!(parse_links("<https://a"), vec![]);
    let parsed = parse_links(r#"<a>; title="unterminated"#);
    assert_eq!(
        parsed[0].params,
        vec![("title".into(), "unterminated".into())]
    );
    let parsed = parse_links("<é>; rel=\"näxt\", ,, <b>");
    assert_eq!(parsed.len(), 2);
    assert_eq!(parsed[0].params[0].1, "näxt");
}

// ---------------------------------------------------------------- next_url

#[test]
fn next_url_relative_and_absolute() {
    let mut w = walk(Pagination::next_url("$.links.next"), 1000);
    assert_eq!(w.first().url, None);
    let u1 = url("https://api.example.com/v2/items?limit=10&state=open");
    let body = br#"{"items":[1],"links":{"next":"/v2/items?after=10"}}"#;
    let second = next_request(w.next(&u1, &no_headers(), body, 1).unwrap());
    assert_eq!(
        second,
        PageRequest {
            url: Some(url("https://api.example.com/v2/items?after=10")),
            query: vec![],
            page: 2,
            offset: 1,
            cursor: None
        }
    );
    let u2 = second.url.unwrap();
    let body = br#"{"items":[2,3],"links":{"next":"https://other.example.com/p3"}}"#;
    let third = next_request(w.next(&u2, &no_headers(), body, 2).unwrap());
    assert_eq!(third.url, Some(url("https://other.example.com/p3")));
    assert_eq!((third.page, third.offset), (3, 3));
    let body = br#"{"items":[4],"links":{"next":null}}"#;
    assert_eq!(
        w.next(&third.url.unwrap(), &no_headers(), body, 1).unwrap(),
        Step::Done
    );
    assert_eq!(w.pages(), 3);
}

#[test]
fn next_url_no_next_forms_are_done() {
    let u = url(ENDPOINT);
    for body in [&br#"{"next":null}"#[..], br#"{"next":""}"#, br#"{}"#] {
        let mut w = walk(Pagination::next_url("$.next"), 1000);
        assert_eq!(w.next(&u, &no_headers(), body, 1).unwrap(), Step::Done);
    }
}

#[test]
fn next_url_errors() {
    let u = url(ENDPOINT);
    let mut w = walk(Pagination::next_url("$.next"), 1000);
    let err = w.next(&u, &no_headers(), br#"{"next":5}"#, 1).unwrap_err();
    assert!(matches!(err, PaginationError::BadNextUrl(_)), "{err:?}");
    let mut w = walk(Pagination::next_url("$.next"), 1000);
    let err = w
        .next(&u, &no_headers(), br#"{"next":"http://[::1"}"#, 1)
        .unwrap_err();
    assert!(matches!(err, PaginationError::BadNextUrl(_)), "{err:?}");
    let mut w = walk(Pagination::next_url("$.next"), 1000);
    let err = w
        .next(&u, &no_headers(), br#"{"next":"file:///etc/passwd"}"#, 1)
        .unwrap_err();
    assert!(matches!(err, PaginationError::BadNextUrl(_)), "{err:?}");
    let mut w = walk(Pagination::next_url("$.next"), 1000);
    let err = w.next(&u, &no_headers(), b"<html>", 1).unwrap_err();
    assert!(matches!(err, PaginationError::BadBody(_)), "{err:?}");
}

#[test]
fn next_url_cycle_fails() {
    let mut w = walk(Pagination::next_url("$.next"), 1000);
    let a = url("https://a/p1");
    let b = next_request(
        w.next(&a, &no_headers(), br#"{"next":"https://a/p2"}"#, 1)
            .unwrap(),
    )
    .url
    .unwrap();
    let c = next_request(w.next(&b, &no_headers(), br#"{"next":"/p3"}"#, 1).unwrap())
        .url
        .unwrap();
    let err = w
        .next(&c, &no_headers(), br#"{"next":"https://a/p2"}"#, 1)
        .unwrap_err();
    assert_eq!(
        err,
        PaginationError::UrlRepeated {
            url: "https://a/p2".into(),
            page: 3
        }
    );
}

#[test]
fn next_url_cycle_through_a_redirect_target_fails() {
    // Page 2 was asked for at /p2 but redirected to /p2b; pointing at either repeats.
    let mut w = walk(Pagination::next_url("$.next"), 1000);
    let step = w.next(&url("https://a/p1"), &no_headers(), br#"{"next":"/p2"}"#, 1);
    next_request(step.unwrap());
    let err = w
        .next(
            &url("https://a/p2b"),
            &no_headers(),
            br#"{"next":"/p2"}"#,
            1,
        )
        .unwrap_err();
    assert!(
        matches!(err, PaginationError::UrlRepeated { page: 2, .. }),
        "{err:?}"
    );
}

#[test]
fn next_url_max_pages() {
    let mut w = walk(Pagination::next_url("$.next"), 2);
    let step = w.next(&url("https://a/p1"), &no_headers(), br#"{"next":"/p2"}"#, 1);
    next_request(step.unwrap());
    let step = w
        .next(&url("https://a/p2"), &no_headers(), br#"{"next":"/p3"}"#, 1)
        .unwrap();
    assert_eq!(step, Step::MaxPages);
}

#[test]
fn long_values_are_cut_in_messages() {
    let long = "x".repeat(500);
    let err = PaginationError::CursorRepeated {
        cursor: long,
        page: 1,
    };
    let text = err.to_string();
    assert!(text.len() < 300, "{}", text.len());
    assert!(text.contains("..."));
}
