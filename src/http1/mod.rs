//! Stand-in with the agreed API subset; replaced by the codec branch on merge.
#![allow(missing_docs, clippy::all)]
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_request_line: usize,
    pub max_head: usize,
    pub max_headers: usize,
    pub max_chunk_extension: usize,
    pub max_trailer_section: usize,
}
impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8192,
            max_head: 61440,
            max_headers: 100,
            max_chunk_extension: 16384,
            max_trailer_section: 16384,
        }
    }
}
#[derive(Debug, Clone, Copy, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}
impl Span {
    pub fn get<'a>(&self, b: &'a [u8]) -> &'a [u8] {
        b.get(self.start as usize..self.end as usize).unwrap_or(b"")
    }
}
#[derive(Debug, Default)]
pub struct HeadScanner {
    pos: usize,
}
impl HeadScanner {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn reset(&mut self) {
        self.pos = 0
    }
    pub fn scan(&mut self, buf: &[u8], l: &Limits) -> Result<Option<usize>, ParseError> {
        let s = self.pos.saturating_sub(3);
        if let Some(i) = buf[s..].windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(s + i + 4));
        }
        self.pos = buf.len();
        if buf.len() > l.max_head {
            return Err(ParseError(431));
        }
        Ok(None)
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
    Other,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    ContentLength(u64),
    Chunked,
}
#[derive(Debug)]
pub struct Request {
    pub method: Method,
    pub path: Span,
    pub version: Version,
    pub framing: BodyFraming,
    pub keep_alive: bool,
    pub expect_continue: bool,
    pub head_len: usize,
}
impl Request {
    pub fn new() -> Self {
        Request {
            method: Method::Get,
            path: Span::default(),
            version: Version::Http11,
            framing: BodyFraming::None,
            keep_alive: true,
            expect_continue: false,
            head_len: 0,
        }
    }
    pub fn clear(&mut self) {
        *self = Self::new()
    }
}
#[derive(Debug, Clone)]
pub struct ParseError(u16);
impl ParseError {
    pub fn status(&self) -> u16 {
        self.0
    }
}
impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad request")
    }
}
pub fn parse_request(buf: &[u8], _l: &Limits, out: &mut Request) -> Result<(), ParseError> {
    let mut h = [httparse::EMPTY_HEADER; 100];
    let mut r = httparse::Request::new(&mut h);
    let n = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return Err(ParseError(400)),
    };
    out.head_len = n;
    out.method = match r.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        Some("POST") => Method::Post,
        _ => Method::Other,
    };
    let p = r.path.unwrap_or("/");
    let start = p.as_ptr() as usize - buf.as_ptr() as usize;
    out.path = Span {
        start: start as u32,
        end: (start + p.len()) as u32,
    };
    out.version = if r.version == Some(0) {
        Version::Http10
    } else {
        Version::Http11
    };
    out.keep_alive = out.version == Version::Http11;
    out.framing = BodyFraming::None;
    for hd in r.headers.iter() {
        if hd.name.eq_ignore_ascii_case("content-length") {
            out.framing = BodyFraming::ContentLength(
                std::str::from_utf8(hd.value)
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .ok_or(ParseError(400))?,
            )
        }
        if hd.name.eq_ignore_ascii_case("transfer-encoding") {
            out.framing = BodyFraming::Chunked
        }
        if hd.name.eq_ignore_ascii_case("connection") && hd.value.eq_ignore_ascii_case(b"close") {
            out.keep_alive = false
        }
    }
    Ok(())
}
#[derive(Debug)]
pub struct ContentLengthBody {
    remaining: u64,
}
impl ContentLengthBody {
    pub fn new(n: u64) -> Self {
        Self { remaining: n }
    }
    pub fn take(&mut self, a: usize) -> usize {
        let t = (a as u64).min(self.remaining);
        self.remaining -= t;
        t as usize
    }
    pub fn is_done(&self) -> bool {
        self.remaining == 0
    }
}
#[derive(Debug)]
pub enum ChunkEvent {
    Data(std::ops::Range<usize>),
    Done,
}
#[derive(Debug)]
pub struct ChunkedDecoder {
    done: bool,
}
impl ChunkedDecoder {
    pub fn new(_l: &Limits) -> Self {
        Self { done: false }
    }
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Option<ChunkEvent>), ParseError> {
        if input.starts_with(b"0\r\n\r\n") {
            self.done = true;
            return Ok((5, Some(ChunkEvent::Done)));
        }
        Err(ParseError(400))
    }
    pub fn is_done(&self) -> bool {
        self.done
    }
}
