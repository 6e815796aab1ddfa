//! The CCP datapath language: source text → checked AST → [`Program`].
//!
//! A program declares its variables, then lists `when` clauses evaluated per ACK:
//! ```text
//! (def (Report (volatile acked 0) (volatile loss 0) (minrtt +infinity))
//!      (state 0))
//! (when true
//!     (:= Report.acked (+ Report.acked Ack.bytes_acked))
//!     (:= Report.loss (+ Report.loss Ack.lost_pkts_sample))
//!     (:= Report.minrtt (min Report.minrtt Flow.rtt_sample_us))
//!     (fallthrough))
//! (when (or (> Report.loss 0) (> Micros Report.minrtt))
//!     (report)
//!     (:= Micros 0))
//! ```
//! The language is portus's: `(def ...)` declares report variables (inside `(Report ...)`,
//! read as `Report.x`, sent to the agent on `(report)`) and control variables (outside);
//! `volatile` ones are reset after each report. Initial values are numbers, `true`,
//! `false` or `+infinity`. Each `(when COND STMT...)` runs its statements when `COND`
//! holds; evaluation stops at the first true clause unless it runs `(fallthrough)`.
//!
//! Statements: `(:= VAR EXPR)` (alias `bind`), `(report)`, `(fallthrough)`. Assigning a
//! new plain name declares a local variable (kept across ACKs); reading a name that is
//! neither declared nor assigned earlier is an error (portus silently accepted it).
//!
//! Expressions (numbers are unsigned 64-bit; literals fit in 32 bits as on the wire):
//! `+ - * /` (aliases `add sub mul div`; `+ * min max and or` take two or more operands),
//! `== > < >= <= !=` (aliases `eq gt lt`), `min`, `max`, `wrapped_max`, `and`/`&&`,
//! `or`/`||`, `not`; and, only as the value of `:=`, `(if COND VALUE)` /
//! `(!if COND VALUE)` (assign only when `COND` holds / does not hold) and
//! `(ewma WEIGHT NEW)` (`VAR = (VAR*WEIGHT + NEW*(10-WEIGHT))/10`, weight 0–10).
//! Names: the primitives `Ack.*`/`Flow.*` (read-only), `Cwnd` (bytes), `Rate` (bytes/s),
//! `Micros` (the timer; assigning resets it), and the declared variables.
//! `and`/`or` compile to `min`/`max`, so booleans stay 0 or 1 even on libccp.
//!
//! The checker reports every error it finds with line, column and a caret snippet
//! ([`Diagnostic::render`]). The compiled [`Program`] is libccp's representation; see
//! [`crate::vm`] for running it.

mod ast;
mod check;
mod syntax;

use std::fmt;

pub use crate::vm::Program;

/// A source range with its 1-based line and column (in characters) of the start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    /// Byte offset of the start.
    pub start: usize,
    /// Byte offset after the end.
    pub end: usize,
    /// 1-based line of the start.
    pub line: usize,
    /// 1-based column (characters) of the start.
    pub col: usize,
}

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The program is rejected.
    Error,
    /// The program compiles but is probably not what was meant.
    Warning,
}

/// One compiler message, tied to a source span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// Where.
    pub span: Span,
    /// A hint shown under the caret, e.g. "did you mean `Report.acked`?".
    pub help: Option<String>,
}

impl Diagnostic {
    pub(crate) fn error(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            span,
            help: None,
        }
    }

    pub(crate) fn warning(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            message: message.into(),
            span,
            help: None,
        }
    }

    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Renders the message with `file:line:col`, the source line and a caret underline:
    /// ```text
    /// error: undeclared name `Report.ackd`
    ///  --> reno.ccp:4:25
    ///   |
    /// 4 |     (:= Report.acked (+ Report.ackd Ack.bytes_acked))
    ///   |                         ^^^^^^^^^^^ did you mean `Report.acked`?
    /// ```
    pub fn render(&self, source: &str, file: &str) -> String {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let line_text = source
            .lines()
            .nth(self.span.line.saturating_sub(1))
            .unwrap_or("");
        let num = self.span.line.to_string();
        let pad = " ".repeat(num.len());
        let col = self.span.col.max(1);
        let line_chars = line_text.chars().count();
        let avail = line_chars.saturating_sub(col - 1).max(1);
        let width = source
            .get(self.span.start..self.span.end)
            .map(|s| s.lines().next().unwrap_or("").chars().count())
            .unwrap_or(1)
            .clamp(1, avail);
        let lead: String = line_text
            .chars()
            .take(col - 1)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let mut out = format!(
            "{kind}: {}\n{pad}--> {file}:{}:{}\n{pad} |\n{num} | {line_text}\n{pad} | {lead}{}",
            self.message,
            self.span.line,
            col,
            "^".repeat(width)
        );
        if let Some(h) = &self.help {
            out.push(' ');
            out.push_str(h);
        }
        out.push('\n');
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}: {kind}: {}",
            self.span.line, self.span.col, self.message
        )?;
        if let Some(h) = &self.help {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

/// A program that failed to compile: all its diagnostics (at least one error).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .diagnostics.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("; "))]
pub struct CompileError {
    /// Errors and warnings, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

impl CompileError {
    /// All diagnostics rendered with [`Diagnostic::render`].
    pub fn render(&self, source: &str, file: &str) -> String {
        self.diagnostics
            .iter()
            .map(|d| d.render(source, file))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A successfully compiled program with the warnings found on the way.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The program.
    pub program: Program,
    /// Warnings (never errors).
    pub warnings: Vec<Diagnostic>,
}

/// Most nesting of parentheses accepted (bounds the compiler's recursion).
pub const MAX_NESTING: usize = 64;
/// Longest source accepted, in bytes.
pub const MAX_SOURCE_LEN: usize = 1 << 20;

/// Compiles source text to a program, or returns every error found.
pub fn compile(source: &str) -> Result<Program, CompileError> {
    compile_with_warnings(source).map(|c| c.program)
}

/// Like [`compile`], also returning warnings (e.g. locals assigned but never read).
pub fn compile_with_warnings(source: &str) -> Result<Compiled, CompileError> {
    if source.len() > MAX_SOURCE_LEN {
        return Err(CompileError {
            diagnostics: vec![Diagnostic::error(
                Span {
                    start: 0,
                    end: 0,
                    line: 1,
                    col: 1,
                },
                format!("program longer than {MAX_SOURCE_LEN} bytes"),
            )],
        });
    }
    let sexprs = syntax::read(source).map_err(|d| CompileError {
        diagnostics: vec![d],
    })?;
    let mut diags = Vec::new();
    let ast = ast::build(&sexprs, &mut diags);
    let result = match ast {
        Some(ast) => check::check(&ast, &mut diags),
        None => None,
    };
    diags.sort_by_key(|d| (d.span.start, d.severity == Severity::Warning));
    match result {
        Some(program) if !diags.iter().any(|d| d.severity == Severity::Error) => Ok(Compiled {
            program,
            warnings: diags,
        }),
        _ => {
            if !diags.iter().any(|d| d.severity == Severity::Error) {
                diags.push(Diagnostic::error(Span::default(), "program rejected"));
            }
            Err(CompileError { diagnostics: diags })
        }
    }
}
