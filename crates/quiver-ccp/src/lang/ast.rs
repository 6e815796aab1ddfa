//! The syntax tree: declarations, `when` clauses, statements and expressions.

use super::syntax::{SExpr, SExprKind};
use super::{Diagnostic, Span};

/// A declared variable.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Decl {
    /// Full name (`Report.x` for report variables).
    pub name: String,
    pub span: Span,
    pub report: bool,
    pub volatile: bool,
    pub init: Literal,
}

/// An initial value or literal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Literal {
    Num(u64),
    Bool(bool),
    Infinity,
}

/// Operators usable in expressions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Min,
    Max,
    WrappedMax,
    And,
    Or,
    Not,
    If,
    NotIf,
    Ewma,
}

impl BinOp {
    fn parse(s: &str) -> Option<BinOp> {
        Some(match s {
            "+" | "add" => BinOp::Add,
            "-" | "sub" => BinOp::Sub,
            "*" | "mul" => BinOp::Mul,
            "/" | "div" => BinOp::Div,
            "==" | "eq" => BinOp::Eq,
            "!=" => BinOp::Ne,
            ">" | "gt" => BinOp::Gt,
            "<" | "lt" => BinOp::Lt,
            ">=" => BinOp::Ge,
            "<=" => BinOp::Le,
            "min" => BinOp::Min,
            "max" => BinOp::Max,
            "wrapped_max" => BinOp::WrappedMax,
            "and" | "&&" => BinOp::And,
            "or" | "||" => BinOp::Or,
            "not" => BinOp::Not,
            "if" => BinOp::If,
            "!if" => BinOp::NotIf,
            "ewma" => BinOp::Ewma,
            _ => return None,
        })
    }

    /// Operand count: (min, max).
    fn arity(self) -> (usize, usize) {
        match self {
            BinOp::Add | BinOp::Mul | BinOp::Min | BinOp::Max | BinOp::And | BinOp::Or => {
                (2, usize::MAX)
            }
            BinOp::Not => (1, 1),
            _ => (2, 2),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Gt => ">",
            BinOp::Lt => "<",
            BinOp::Ge => ">=",
            BinOp::Le => "<=",
            BinOp::Min => "min",
            BinOp::Max => "max",
            BinOp::WrappedMax => "wrapped_max",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::Not => "not",
            BinOp::If => "if",
            BinOp::NotIf => "!if",
            BinOp::Ewma => "ewma",
        }
    }
}

/// An expression.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ExprKind {
    Lit(Literal),
    Name(String),
    Call(BinOp, Vec<Expr>),
}

/// An expression with its span.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

/// A statement in a `when` body.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Stmt {
    Assign {
        target: String,
        target_span: Span,
        value: Expr,
    },
    Report(Span),
    Fallthrough(Span),
}

/// A `when` clause.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct When {
    pub span: Span,
    pub cond: Expr,
    pub body: Vec<Stmt>,
}

/// A whole program.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Ast {
    pub decls: Vec<Decl>,
    pub whens: Vec<When>,
}

fn head(list: &[SExpr]) -> Option<&str> {
    match list.first().map(|e| &e.kind) {
        Some(SExprKind::Symbol(s)) => Some(s.as_str()),
        _ => None,
    }
}

fn literal(e: &SExpr) -> Option<Literal> {
    match &e.kind {
        SExprKind::Num(n) => Some(Literal::Num(*n)),
        SExprKind::Symbol(s) => match s.as_str() {
            "true" => Some(Literal::Bool(true)),
            "false" => Some(Literal::Bool(false)),
            "+infinity" => Some(Literal::Infinity),
            _ => None,
        },
        SExprKind::List(_) => None,
    }
}

fn decl(e: &SExpr, report: bool, out: &mut Vec<Decl>, diags: &mut Vec<Diagnostic>) {
    let SExprKind::List(items) = &e.kind else {
        diags.push(
            Diagnostic::error(e.span, "expected a declaration `(NAME INITIAL)`")
                .with_help("e.g. `(acked 0)` or `(volatile acked 0)`"),
        );
        return;
    };
    let (volatile, rest) = match head(items) {
        Some("volatile") => (true, &items[1..]),
        _ => (false, &items[..]),
    };
    let [name, init] = rest else {
        diags.push(
            Diagnostic::error(
                e.span,
                "a declaration is `(NAME INITIAL)` or `(volatile NAME INITIAL)`",
            )
            .with_help("e.g. `(volatile acked 0)`"),
        );
        return;
    };
    let SExprKind::Symbol(n) = &name.kind else {
        diags.push(Diagnostic::error(name.span, "expected a variable name"));
        return;
    };
    let Some(init) = literal(init) else {
        diags.push(Diagnostic::error(
            init.span,
            "an initial value must be a number, `true`, `false` or `+infinity`",
        ));
        return;
    };
    let span = name.span;
    // Inside `(Report ...)` names get the prefix; outside, portus also treats a name that
    // already has it as a report variable.
    let (name, report) = if report {
        (format!("Report.{n}"), true)
    } else {
        (n.clone(), n.starts_with("Report."))
    };
    out.push(Decl {
        name,
        span,
        report,
        volatile,
        init,
    });
}

fn expr(e: &SExpr, diags: &mut Vec<Diagnostic>) -> Option<Expr> {
    match &e.kind {
        SExprKind::Num(n) => Some(Expr {
            kind: ExprKind::Lit(Literal::Num(*n)),
            span: e.span,
        }),
        SExprKind::Symbol(s) => Some(Expr {
            kind: match literal(e) {
                Some(l) => ExprKind::Lit(l),
                None => ExprKind::Name(s.clone()),
            },
            span: e.span,
        }),
        SExprKind::List(items) => {
            let Some(first) = items.first() else {
                diags.push(Diagnostic::error(e.span, "empty expression `()`"));
                return None;
            };
            let Some(h) = head(items) else {
                diags.push(Diagnostic::error(first.span, "expected an operator"));
                return None;
            };
            let Some(op) = BinOp::parse(h) else {
                let help = match h {
                    ":=" | "bind" | "report" | "fallthrough" => {
                        "statements go directly in a `when` body, not inside expressions"
                    }
                    _ => "operators: + - * / == != > < >= <= min max wrapped_max and or not if !if ewma",
                };
                diags.push(
                    Diagnostic::error(first.span, format!("unknown operator `{h}`"))
                        .with_help(help),
                );
                return None;
            };
            let args = &items[1..];
            let (lo, hi) = op.arity();
            if args.len() < lo || args.len() > hi {
                let want = if hi == usize::MAX {
                    format!("at least {lo}")
                } else {
                    lo.to_string()
                };
                diags.push(Diagnostic::error(
                    e.span,
                    format!(
                        "`{}` takes {want} operand(s), found {}",
                        op.name(),
                        args.len()
                    ),
                ));
                return None;
            }
            let mut out = Vec::with_capacity(args.len());
            let mut ok = true;
            for a in args {
                match expr(a, diags) {
                    Some(x) => out.push(x),
                    None => ok = false,
                }
            }
            ok.then_some(Expr {
                kind: ExprKind::Call(op, out),
                span: e.span,
            })
        }
    }
}

fn stmt(e: &SExpr, diags: &mut Vec<Diagnostic>) -> Option<Stmt> {
    let SExprKind::List(items) = &e.kind else {
        diags.push(
            Diagnostic::error(e.span, "expected a statement")
                .with_help("statements: `(:= VAR EXPR)`, `(report)`, `(fallthrough)`"),
        );
        return None;
    };
    match head(items) {
        Some("report") if items.len() == 1 => Some(Stmt::Report(e.span)),
        Some("fallthrough") if items.len() == 1 => Some(Stmt::Fallthrough(e.span)),
        Some(h @ ("report" | "fallthrough")) => {
            diags.push(Diagnostic::error(
                e.span,
                format!("`({h})` takes no operands"),
            ));
            None
        }
        Some(":=" | "bind") => {
            let [_, target, value] = &items[..] else {
                diags.push(Diagnostic::error(
                    e.span,
                    "an assignment is `(:= VARIABLE EXPRESSION)`",
                ));
                return None;
            };
            let SExprKind::Symbol(t) = &target.kind else {
                diags.push(Diagnostic::error(
                    target.span,
                    "the target of `:=` must be a variable name",
                ));
                return None;
            };
            if literal(target).is_some() {
                diags.push(Diagnostic::error(target.span, "cannot assign to a literal"));
                return None;
            }
            let value = expr(value, diags)?;
            Some(Stmt::Assign {
                target: t.clone(),
                target_span: target.span,
                value,
            })
        }
        _ => {
            diags.push(
                Diagnostic::error(e.span, "expected a statement")
                    .with_help("statements: `(:= VAR EXPR)`, `(report)`, `(fallthrough)`; an expression alone has no effect"),
            );
            None
        }
    }
}

/// Builds the AST from the top-level s-expressions; errors go to `diags`.
pub(crate) fn build(top: &[SExpr], diags: &mut Vec<Diagnostic>) -> Option<Ast> {
    let mut decls = Vec::new();
    let mut whens = Vec::new();
    let before = diags.len();
    for (n, e) in top.iter().enumerate() {
        let items = match &e.kind {
            SExprKind::List(items) => items,
            _ => {
                diags.push(Diagnostic::error(
                    e.span,
                    "expected `(def ...)` or `(when ...)`",
                ));
                continue;
            }
        };
        match head(items) {
            Some("def") => {
                if n != 0 {
                    diags.push(Diagnostic::error(
                        e.span,
                        "`(def ...)` must come first, once",
                    ));
                    continue;
                }
                for d in &items[1..] {
                    if let SExprKind::List(inner) = &d.kind {
                        if head(inner) == Some("Report") {
                            for r in &inner[1..] {
                                decl(r, true, &mut decls, diags);
                            }
                            continue;
                        }
                    }
                    decl(d, false, &mut decls, diags);
                }
            }
            Some("when") => {
                if items.len() < 3 {
                    diags.push(
                        Diagnostic::error(
                            e.span,
                            "a `when` needs a condition and at least one statement",
                        )
                        .with_help("`(when CONDITION STATEMENT...)`"),
                    );
                    continue;
                }
                let cond = expr(&items[1], diags);
                let body: Vec<_> = items[2..].iter().filter_map(|s| stmt(s, diags)).collect();
                if let Some(cond) = cond {
                    whens.push(When {
                        span: e.span,
                        cond,
                        body,
                    });
                }
            }
            _ => {
                let at = items.first().map(|f| f.span).unwrap_or(e.span);
                diags.push(Diagnostic::error(
                    at,
                    "expected `(def ...)` or `(when ...)`",
                ));
            }
        }
    }
    if whens.is_empty() && diags.len() == before {
        let end = top.last().map(|e| e.span).unwrap_or(Span {
            start: 0,
            end: 0,
            line: 1,
            col: 1,
        });
        diags.push(Diagnostic::error(
            end,
            "a program needs at least one `(when CONDITION STATEMENT...)`",
        ));
    }
    (diags.len() == before).then_some(Ast { decls, whens })
}
