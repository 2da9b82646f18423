//! A small server-sent-events parser (the WHATWG `text/event-stream` format): bytes in, whole
//! events out. Comment lines (`: ping`) are reported as keep-alives.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The `event:` field; `message` when absent.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` field, if the event had one.
    pub id: Option<String>,
}

/// What a chunk of the stream held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A whole event.
    Event(Event),
    /// A comment line: the server is alive.
    Comment,
}

/// Incremental parser; feed it chunks as they arrive.
#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
    id: Option<String>,
}

/// Largest line accepted; a longer one is dropped rather than grown without bound.
const MAX_LINE: usize = 1 << 20;

impl Parser {
    /// Parses `chunk`, returning the items it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Item> {
        self.buf.extend_from_slice(chunk);
        let mut items = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            let mut line = &self.buf[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            if let Some(item) = self.line(&line) {
                items.push(item);
            }
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_LINE {
            self.buf.clear();
        }
        items
    }

    fn line(&mut self, line: &str) -> Option<Item> {
        if line.is_empty() {
            let data = self.data.take();
            let event = self.event.take();
            let id = self.id.take();
            return data.map(|data| {
                Item::Event(Event {
                    event: event.unwrap_or_else(|| "message".into()),
                    data,
                    id,
                })
            });
        }
        if line.starts_with(':') {
            return Some(Item::Comment);
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "id" => self.id = Some(value.to_owned()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks() {
        let mut p = Parser::default();
        assert!(p.push(b": ping\n\nevent: revo").len() == 1);
        let items = p.push(b"cation\r\nid: 7\ndata: {\"a\":\ndata: 1}\n\n");
        assert_eq!(
            items,
            vec![Item::Event(Event {
                event: "revocation".into(),
                data: "{\"a\":\n1}".into(),
                id: Some("7".into()),
            })]
        );
        let items = p.push(b"data: x\n\n");
        assert_eq!(
            items,
            vec![Item::Event(Event {
                event: "message".into(),
                data: "x".into(),
                id: None
            })]
        );
    }
}
