//! The SCIM-like filter language Okta takes in `search` and `filter`:
//! `attr op "value"` with `eq ne sw co ew gt ge lt le pr`, joined by `and` / `or`,
//! negated by `not`, grouped by parentheses.
//!
//! Contract: a parse error is the caller's 400; evaluation never fails (an absent
//! attribute compares false). Comparisons of strings are case-insensitive for `eq`/`sw`/`co`
//! like Okta's; `gt`/`lt` compare the text, which orders ISO timestamps correctly.

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Cmp {
        attr: String,
        op: String,
        value: String,
    },
    Present(String),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Open,
    Close,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            out.push(Tok::Open);
            i += 1;
        } else if c == ')' {
            out.push(Tok::Close);
            i += 1;
        } else if c == '"' {
            let mut v = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string".to_string()),
                    Some('\\') => {
                        if let Some(n) = chars.get(i + 1) {
                            v.push(*n);
                        }
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        v.push(*c);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(v));
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '(' && chars[i] != ')'
            {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        }
    }
    Ok(out)
}

const OPS: &[&str] = &["eq", "ne", "sw", "co", "ew", "gt", "ge", "lt", "le"];

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
    }
    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.peek_word("and") {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }
    fn unary(&mut self) -> Result<Expr, String> {
        if self.peek_word("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        match self.toks.get(self.pos).cloned() {
            Some(Tok::Open) => {
                self.pos += 1;
                let e = self.or()?;
                if self.toks.get(self.pos) != Some(&Tok::Close) {
                    return Err("expected )".to_string());
                }
                self.pos += 1;
                Ok(e)
            }
            Some(Tok::Word(attr)) => {
                self.pos += 1;
                let op = match self.toks.get(self.pos) {
                    Some(Tok::Word(op)) => op.to_lowercase(),
                    _ => return Err(format!("expected an operator after {attr}")),
                };
                self.pos += 1;
                if op == "pr" {
                    return Ok(Expr::Present(attr));
                }
                if !OPS.contains(&op.as_str()) {
                    return Err(format!("unknown operator {op}"));
                }
                let value = match self.toks.get(self.pos) {
                    Some(Tok::Str(v)) | Some(Tok::Word(v)) => v.clone(),
                    _ => return Err(format!("expected a value after {attr} {op}")),
                };
                self.pos += 1;
                Ok(Expr::Cmp { attr, op, value })
            }
            _ => Err("expected an expression".to_string()),
        }
    }
}

pub fn parse(s: &str) -> Result<Expr, String> {
    let toks = tokenize(s)?;
    let mut p = Parser { toks, pos: 0 };
    let e = p.or()?;
    if p.pos != p.toks.len() {
        return Err("trailing input".to_string());
    }
    Ok(e)
}

impl Expr {
    pub fn eval(&self, get: &dyn Fn(&str) -> Option<String>) -> bool {
        match self {
            Expr::Present(a) => get(a).is_some_and(|v| !v.is_empty()),
            Expr::And(a, b) => a.eval(get) && b.eval(get),
            Expr::Or(a, b) => a.eval(get) || b.eval(get),
            Expr::Not(a) => !a.eval(get),
            Expr::Cmp { attr, op, value } => {
                let Some(have) = get(attr) else {
                    return op == "ne";
                };
                let (h, v) = (have.to_lowercase(), value.to_lowercase());
                match op.as_str() {
                    "eq" => h == v,
                    "ne" => h != v,
                    "sw" => h.starts_with(&v),
                    "co" => h.contains(&v),
                    "ew" => h.ends_with(&v),
                    "gt" => have.as_str() > value.as_str(),
                    "ge" => have.as_str() >= value.as_str(),
                    "lt" => have.as_str() < value.as_str(),
                    "le" => have.as_str() <= value.as_str(),
                    _ => false,
                }
            }
        }
    }

    /// When the expression is `attr eq "a" or attr eq "b" ...` for `attr`: the values,
    /// so the caller can use an index instead of scanning.
    pub fn eq_values(&self, attr: &str) -> Option<Vec<String>> {
        match self {
            Expr::Cmp { attr: a, op, value } if a == attr && op == "eq" => {
                Some(vec![value.clone()])
            }
            Expr::Or(a, b) => {
                let mut v = a.eq_values(attr)?;
                v.extend(b.eq_values(attr)?);
                Some(v)
            }
            _ => None,
        }
    }

    /// Attributes the expression names (to reject unsupported ones).
    pub fn attrs(&self, out: &mut Vec<String>) {
        match self {
            Expr::Cmp { attr, .. } | Expr::Present(attr) => out.push(attr.clone()),
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.attrs(out);
                b.attrs(out);
            }
            Expr::Not(a) => a.attrs(out),
        }
    }
}

/// Looks up a dotted path in a JSON value (for System Log filters).
pub fn json_get(v: &serde_json::Value, path: &str) -> Option<String> {
    let mut cur = v;
    for part in path.split('.') {
        cur = cur.get(part)?;
    }
    match cur {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_batched_names_and_evaluates() {
        let e = parse(r#"profile.name eq "A" or profile.name eq "B c""#).unwrap();
        assert_eq!(e.eq_values("profile.name").unwrap(), vec!["A", "B c"]);
        let e = parse(r#"(eventType eq "x" or eventType sw "user.") and not id pr"#).unwrap();
        let get = |a: &str| (a == "eventType").then(|| "user.lifecycle.create".to_string());
        assert!(e.eval(&get));
        assert!(parse("a eq").is_err());
        assert!(parse(r#"a zz "b""#).is_err());
    }
}
