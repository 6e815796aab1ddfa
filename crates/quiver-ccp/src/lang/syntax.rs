//! Lexer and s-expression reader: text → [`SExpr`] trees with spans.

use super::{Diagnostic, Span, MAX_NESTING};

/// An s-expression: an atom (symbol or number) or a parenthesised list.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum SExprKind {
    /// A symbol: a name, an operator or a keyword.
    Symbol(String),
    /// A decimal literal (checked to fit in `u64`).
    Num(u64),
    /// `( ... )`.
    List(Vec<SExpr>),
}

/// An s-expression with its source span.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SExpr {
    pub kind: SExprKind,
    pub span: Span,
}

#[derive(Debug)]
enum Tok {
    Open,
    Close,
    Atom(String),
}

fn is_symbol_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._+-*/<>=!:&|".contains(c)
}

fn lex(src: &str) -> Result<Vec<(Tok, Span)>, Diagnostic> {
    let mut toks = Vec::new();
    let mut line = 1;
    let mut col = 1;
    let mut it = src.char_indices().peekable();
    while let Some(&(i, c)) = it.peek() {
        let span = |end: usize, line: usize, col: usize| Span {
            start: i,
            end,
            line,
            col,
        };
        if c == '\n' {
            it.next();
            line += 1;
            col = 1;
        } else if c.is_whitespace() {
            it.next();
            col += 1;
        } else if c == '#' || c == ';' {
            while let Some(&(_, c)) = it.peek() {
                if c == '\n' {
                    break;
                }
                it.next();
                col += 1;
            }
        } else if c == '(' || c == ')' {
            it.next();
            toks.push((
                if c == '(' { Tok::Open } else { Tok::Close },
                span(i + 1, line, col),
            ));
            col += 1;
        } else if is_symbol_char(c) {
            let (start_line, start_col) = (line, col);
            let mut end = i;
            while let Some(&(j, c)) = it.peek() {
                if !is_symbol_char(c) {
                    break;
                }
                end = j + c.len_utf8();
                it.next();
                col += 1;
            }
            toks.push((
                Tok::Atom(src[i..end].to_string()),
                span(end, start_line, start_col),
            ));
        } else {
            return Err(Diagnostic::error(
                span(i + c.len_utf8(), line, col),
                format!("unexpected character {c:?}"),
            )
            .with_help("names use letters, digits, `.` and `_`"));
        }
    }
    Ok(toks)
}

fn atom(text: String, span: Span) -> Result<SExpr, Diagnostic> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let n = text
            .parse::<u64>()
            .map_err(|_| Diagnostic::error(span, "number does not fit in 64 bits"))?;
        return Ok(SExpr {
            kind: SExprKind::Num(n),
            span,
        });
    }
    if text.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(
            Diagnostic::error(span, format!("malformed number `{text}`"))
                .with_help("numbers are unsigned decimal integers"),
        );
    }
    Ok(SExpr {
        kind: SExprKind::Symbol(text),
        span,
    })
}

/// Reads every top-level s-expression of `src`.
pub(crate) fn read(src: &str) -> Result<Vec<SExpr>, Diagnostic> {
    let toks = lex(src)?;
    // Iterative reader with an explicit stack: (open span, items so far).
    let mut stack: Vec<(Span, Vec<SExpr>)> = Vec::new();
    let mut top = Vec::new();
    for (tok, span) in toks {
        match tok {
            Tok::Open => {
                if stack.len() >= MAX_NESTING {
                    return Err(Diagnostic::error(
                        span,
                        format!("parentheses nested deeper than {MAX_NESTING}"),
                    ));
                }
                stack.push((span, Vec::new()));
            }
            Tok::Close => {
                let Some((open, items)) = stack.pop() else {
                    return Err(
                        Diagnostic::error(span, "unmatched `)`").with_help("this closes nothing")
                    );
                };
                let whole = Span {
                    end: span.end,
                    ..open
                };
                let e = SExpr {
                    kind: SExprKind::List(items),
                    span: whole,
                };
                match stack.last_mut() {
                    Some((_, parent)) => parent.push(e),
                    None => top.push(e),
                }
            }
            Tok::Atom(text) => {
                let e = atom(text, span)?;
                match stack.last_mut() {
                    Some((_, parent)) => parent.push(e),
                    None => top.push(e),
                }
            }
        }
    }
    if let Some((open, _)) = stack.pop() {
        let open = stack.first().map(|(s, _)| *s).unwrap_or(open);
        return Err(Diagnostic::error(
            Span {
                end: open.start + 1,
                ..open
            },
            "unclosed `(`",
        )
        .with_help("missing `)` before the end of the program"));
    }
    Ok(top)
}
