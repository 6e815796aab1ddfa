//! The checker and code generator: names, types and writability, then libccp instructions.

use super::ast::{Ast, BinOp, Expr, ExprKind, Literal, Stmt};
use super::{Diagnostic, Span};
use crate::vm::program::{
    Event, Implicit, Instr, Op, Primitive, Program, Reg, IMM_INFINITY, MAX_CONTROL_REGS,
    MAX_INSTRS, MAX_LOCAL_REGS, MAX_REPORT_REGS, MAX_TMP_REGS,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    Num,
    Bool,
}

impl Ty {
    fn noun(self) -> &'static str {
        match self {
            Ty::Num => "a number",
            Ty::Bool => "a boolean",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Primitive,
    Builtin,
    Report,
    Control,
    Local,
}

#[derive(Clone, Debug)]
struct Var {
    name: String,
    reg: Reg,
    ty: Ty,
    kind: Kind,
    span: Span,
    read: bool,
    written: bool,
}

struct Checker<'d> {
    vars: Vec<Var>,
    instrs: Vec<Instr>,
    next_tmp: u8,
    locals: u8,
    diags: &'d mut Vec<Diagnostic>,
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn literal_reg(l: Literal) -> Result<(Reg, Ty), String> {
    match l {
        Literal::Bool(b) => Ok((Reg::Imm(u32::from(b)), Ty::Bool)),
        Literal::Infinity => Ok((Reg::Imm(IMM_INFINITY), Ty::Num)),
        Literal::Num(n) if n < u64::from(IMM_INFINITY) => Ok((Reg::Imm(n as u32), Ty::Num)),
        Literal::Num(n) => Err(format!(
            "literal {n} does not fit in a 32-bit immediate (the wire format's limit)"
        )),
    }
}

impl Checker<'_> {
    fn lookup(&mut self, name: &str) -> Option<&mut Var> {
        self.vars.iter_mut().find(|v| v.name == name)
    }

    fn suggest(&self, name: &str) -> Option<String> {
        let lower = name.to_ascii_lowercase();
        let mut best: Option<(usize, &str)> = None;
        for v in &self.vars {
            let d = if v.name.to_ascii_lowercase() == lower {
                0
            } else {
                distance(name, &v.name)
            };
            let limit = (name.len() / 3).clamp(1, 3);
            if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
                best = Some((d, &v.name));
            }
        }
        best.map(|(_, n)| format!("did you mean `{n}`?"))
    }

    fn undeclared(&mut self, name: &str, span: Span) {
        let mut d = Diagnostic::error(span, format!("undeclared name `{name}`"));
        if let Some(s) = self.suggest(name) {
            d = d.with_help(s);
        } else if name.starts_with("Report.") {
            d = d.with_help("declare it in `(def (Report ...))`");
        } else if name.starts_with("Ack.") || name.starts_with("Flow.") {
            d = d.with_help("not a known primitive");
        } else {
            d = d.with_help("declare it in `(def ...)` or assign it first with `:=`");
        }
        self.diags.push(d);
    }

    fn tmp(&mut self, span: Span) -> Option<Reg> {
        if usize::from(self.next_tmp) >= MAX_TMP_REGS {
            self.diags.push(
                Diagnostic::error(
                    span,
                    format!("expression too deep: it needs more than {MAX_TMP_REGS} temporaries"),
                )
                .with_help("compute part of it into a local variable first"),
            );
            return None;
        }
        let r = Reg::Tmp(self.next_tmp);
        self.next_tmp += 1;
        Some(r)
    }

    fn emit(&mut self, op: Op, res: Reg, left: Reg, right: Reg) {
        self.instrs.push(Instr {
            op,
            res,
            left,
            right,
        });
    }

    fn expect(&mut self, e: &Expr, want: Ty, got: Ty, what: &str) -> Option<()> {
        if want == got {
            return Some(());
        }
        self.diags.push(Diagnostic::error(
            e.span,
            format!(
                "type mismatch: {what} expects {}, found {}",
                want.noun(),
                got.noun()
            ),
        ));
        None
    }

    /// Compiles `e` to instructions; returns the register holding its value.
    fn value(&mut self, e: &Expr) -> Option<(Reg, Ty)> {
        match &e.kind {
            ExprKind::Lit(l) => {
                match literal_reg(*l) {
                    Ok(r) => Some(r),
                    Err(msg) => {
                        self.diags.push(Diagnostic::error(e.span, msg).with_help(
                            "use `+infinity`, or compute it, e.g. `(* 1000000 1000000)`",
                        ));
                        None
                    }
                }
            }
            ExprKind::Name(n) => match self.lookup(n) {
                Some(v) => {
                    v.read = true;
                    Some((v.reg, v.ty))
                }
                None => {
                    self.undeclared(n, e.span);
                    None
                }
            },
            ExprKind::Call(op @ (BinOp::If | BinOp::NotIf | BinOp::Ewma), _) => {
                self.diags.push(
                    Diagnostic::error(
                        e.span,
                        format!("`{}` can only be the value of an assignment", op.name()),
                    )
                    .with_help(format!(
                        "write `(:= VARIABLE ({} ...))`: it updates the variable in place",
                        op.name()
                    )),
                );
                None
            }
            ExprKind::Call(op, args) => self.call(*op, args, e),
        }
    }

    fn call(&mut self, op: BinOp, args: &[Expr], e: &Expr) -> Option<(Reg, Ty)> {
        let base = self.next_tmp;
        let (operand, result) = match op {
            BinOp::Add
            | BinOp::Sub
            | BinOp::Mul
            | BinOp::Div
            | BinOp::Min
            | BinOp::Max
            | BinOp::WrappedMax => (Ty::Num, Ty::Num),
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Lt | BinOp::Ge | BinOp::Le => {
                (Ty::Num, Ty::Bool)
            }
            BinOp::And | BinOp::Or | BinOp::Not => (Ty::Bool, Ty::Bool),
            BinOp::If | BinOp::NotIf | BinOp::Ewma => return None,
        };
        let what = format!("`{}`", op.name());
        // Evaluate all operands first so that every error is reported.
        let first = self.value(&args[0]);
        if let Some((_, t)) = first {
            self.expect(&args[0], operand, t, &what)?;
        }
        if op == BinOp::Not {
            let (a, _) = first?;
            self.next_tmp = base;
            let t = self.tmp(e.span)?;
            self.emit(Op::Equiv, t, a, Reg::Imm(0));
            return Some((t, Ty::Bool));
        }
        let mut acc = first.map(|f| f.0);
        for arg in &args[1..] {
            let b = self.value(arg);
            if let Some((_, t)) = b {
                self.expect(arg, operand, t, &what)?;
            }
            let (Some(a), Some((b, _))) = (acc, b) else {
                acc = None;
                continue;
            };
            self.next_tmp = base;
            let t = self.tmp(e.span)?;
            match op {
                BinOp::Ge | BinOp::Le | BinOp::Ne => {
                    let first_op = match op {
                        BinOp::Ge => Op::Lt,
                        BinOp::Le => Op::Gt,
                        _ => Op::Equiv,
                    };
                    self.emit(first_op, t, a, b);
                    self.emit(Op::Equiv, t, t, Reg::Imm(0));
                }
                _ => {
                    let code = match op {
                        BinOp::Add => Op::Add,
                        BinOp::Sub => Op::Sub,
                        BinOp::Mul => Op::Mul,
                        BinOp::Div => Op::Div,
                        BinOp::Min | BinOp::And => Op::Min,
                        BinOp::Max | BinOp::Or => Op::Max,
                        BinOp::WrappedMax => Op::MaxWrap,
                        BinOp::Eq => Op::Equiv,
                        BinOp::Gt => Op::Gt,
                        _ => Op::Lt,
                    };
                    self.emit(code, t, a, b);
                }
            }
            acc = Some(t);
        }
        acc.map(|r| (r, result))
    }

    /// Writes the value of `e` into `target` (retargeting its last instruction if the
    /// value was computed into a temporary).
    fn store(&mut self, target: Reg, value: Reg) {
        if let (Reg::Tmp(_), Some(last)) = (value, self.instrs.last_mut()) {
            if last.res == value {
                last.res = target;
                return;
            }
        }
        self.emit(Op::Bind, target, target, value);
    }

    fn assign(&mut self, target: &str, tspan: Span, value: &Expr) -> Option<()> {
        let existing = self.vars.iter().position(|v| v.name == target);
        if let Some(i) = existing {
            let v = &self.vars[i];
            if v.kind == Kind::Primitive {
                self.diags.push(
                    Diagnostic::error(
                        tspan,
                        format!(
                            "cannot assign to `{target}`: it is a read-only measurement primitive"
                        ),
                    )
                    .with_help("copy it into a variable instead"),
                );
                return None;
            }
        } else if target.contains('.') || target.starts_with(|c: char| c.is_ascii_uppercase()) {
            self.undeclared(target, tspan);
            return None;
        } else if target.starts_with("__") {
            self.diags.push(Diagnostic::error(
                tspan,
                format!("`{target}`: names starting with `__` are reserved"),
            ));
            return None;
        } else if let Some(s) = self.suggest(target) {
            if self
                .vars
                .iter()
                .any(|v| v.name.eq_ignore_ascii_case(target))
            {
                self.diags.push(
                    Diagnostic::error(tspan, format!("`{target}` would be a new local variable, but it differs from a known name only in case"))
                        .with_help(s),
                );
                return None;
            }
        }
        let target_ty = existing.map(|i| self.vars[i].ty);
        let (op_special, args) = match &value.kind {
            ExprKind::Call(op @ (BinOp::If | BinOp::NotIf | BinOp::Ewma), args) => {
                (Some(*op), &args[..])
            }
            _ => (None, &[][..]),
        };
        let (reg_of_target, ty) = match op_special {
            Some(op @ (BinOp::If | BinOp::NotIf)) => {
                let c = self.value(&args[0]);
                let v = self.value(&args[1]);
                let (c, ct) = c?;
                self.expect(
                    &args[0],
                    Ty::Bool,
                    ct,
                    &format!("the condition of `{}`", op.name()),
                )?;
                let (v, vt) = v?;
                if let Some(tt) = target_ty {
                    self.expect(&args[1], tt, vt, &format!("`{target}`"))?;
                }
                let reg = self.target_reg(existing, target, tspan, vt)?;
                let code = if op == BinOp::If { Op::If } else { Op::NotIf };
                self.emit(code, reg, c, v);
                (reg, vt)
            }
            Some(_) => {
                let w = self.value(&args[0]);
                let n = self.value(&args[1]);
                let (w, wt) = w?;
                self.expect(&args[0], Ty::Num, wt, "the weight of `ewma`")?;
                if let Reg::Imm(x) = w {
                    if x > 10 {
                        self.diags.push(
                            Diagnostic::error(
                                args[0].span,
                                "`ewma` weight must be between 0 and 10",
                            )
                            .with_help("the new value is weighted (10 - weight)/10"),
                        );
                        return None;
                    }
                }
                let (n, nt) = n?;
                self.expect(&args[1], Ty::Num, nt, "`ewma`")?;
                if let Some(tt) = target_ty {
                    self.expect(value, tt, Ty::Num, &format!("`{target}`"))?;
                }
                let reg = self.target_reg(existing, target, tspan, Ty::Num)?;
                self.emit(Op::Ewma, reg, w, n);
                (reg, Ty::Num)
            }
            None => {
                let (v, vt) = self.value(value)?;
                if let Some(tt) = target_ty {
                    if tt != vt {
                        self.diags.push(Diagnostic::error(
                            value.span,
                            format!(
                                "type mismatch: `{target}` is {}, but this value is {}",
                                tt.noun(),
                                vt.noun()
                            ),
                        ));
                        return None;
                    }
                }
                let reg = self.target_reg(existing, target, tspan, vt)?;
                self.store(reg, v);
                (reg, vt)
            }
        };
        let _ = (reg_of_target, ty);
        Some(())
    }

    fn target_reg(
        &mut self,
        existing: Option<usize>,
        name: &str,
        span: Span,
        ty: Ty,
    ) -> Option<Reg> {
        if let Some(i) = existing {
            self.vars[i].written = true;
            return Some(self.vars[i].reg);
        }
        if usize::from(self.locals) >= MAX_LOCAL_REGS {
            self.diags.push(Diagnostic::error(
                span,
                format!("too many local variables (max {MAX_LOCAL_REGS})"),
            ));
            return None;
        }
        let reg = Reg::Local(self.locals);
        self.locals += 1;
        self.vars.push(Var {
            name: name.to_string(),
            reg,
            ty,
            kind: Kind::Local,
            span,
            read: false,
            written: true,
        });
        Some(reg)
    }
}

/// Checks the AST and generates the program; errors and warnings go to `diags`.
pub(crate) fn check(ast: &Ast, diags: &mut Vec<Diagnostic>) -> Option<Program> {
    let mut c = Checker {
        vars: Vec::new(),
        instrs: Vec::new(),
        next_tmp: 0,
        locals: 0,
        diags,
    };
    let builtin_span = Span::default();
    for p in Primitive::ALL {
        let ty = if p.is_bool() { Ty::Bool } else { Ty::Num };
        c.vars.push(Var {
            name: p.name().into(),
            reg: Reg::Primitive(p),
            ty,
            kind: Kind::Primitive,
            span: builtin_span,
            read: true,
            written: true,
        });
    }
    for (n, i) in [
        ("Cwnd", Implicit::Cwnd),
        ("Rate", Implicit::Rate),
        ("Micros", Implicit::Micros),
    ] {
        c.vars.push(Var {
            name: n.into(),
            reg: Reg::Implicit(i),
            ty: Ty::Num,
            kind: Kind::Builtin,
            span: builtin_span,
            read: true,
            written: true,
        });
    }
    let (mut n_report, mut n_control) = (0usize, 0usize);
    let mut defs = Vec::new();
    for report_pass in [true, false] {
        for d in ast.decls.iter().filter(|d| d.report == report_pass) {
            if let Some(prev) = c.vars.iter().find(|v| v.name == d.name) {
                let msg = if prev.kind == Kind::Primitive || prev.kind == Kind::Builtin {
                    format!("`{}` is a built-in name and cannot be declared", d.name)
                } else {
                    format!("`{}` is declared twice", d.name)
                };
                c.diags.push(Diagnostic::error(d.span, msg));
                continue;
            }
            let bad_name = d.name.starts_with("__")
                || (!d.report
                    && (d.name.starts_with("Report.")
                        || d.name.starts_with("Ack.")
                        || d.name.starts_with("Flow.")));
            if bad_name {
                c.diags.push(Diagnostic::error(
                    d.span,
                    format!("`{}`: reserved name or prefix", d.name),
                ));
                continue;
            }
            let (imm, ty) = match literal_reg(d.init) {
                Ok(r) => r,
                Err(msg) => {
                    c.diags.push(
                        Diagnostic::error(d.span, msg)
                            .with_help("use `+infinity` for an unbounded initial value"),
                    );
                    continue;
                }
            };
            let reg = if d.report {
                if n_report >= MAX_REPORT_REGS {
                    c.diags.push(Diagnostic::error(
                        d.span,
                        format!("too many report variables (max {MAX_REPORT_REGS})"),
                    ));
                    continue;
                }
                n_report += 1;
                Reg::Report {
                    index: (n_report - 1) as u8,
                    volatile: d.volatile,
                }
            } else {
                if n_control >= MAX_CONTROL_REGS {
                    c.diags.push(Diagnostic::error(
                        d.span,
                        format!("too many control variables (max {MAX_CONTROL_REGS})"),
                    ));
                    continue;
                }
                n_control += 1;
                Reg::Control {
                    index: (n_control - 1) as u8,
                    volatile: d.volatile,
                }
            };
            let kind = if d.report {
                Kind::Report
            } else {
                Kind::Control
            };
            c.vars.push(Var {
                name: d.name.clone(),
                reg,
                ty,
                kind,
                span: d.span,
                read: false,
                written: false,
            });
            defs.push(Instr {
                op: Op::Def,
                res: reg,
                left: reg,
                right: imm,
            });
        }
    }
    c.instrs = defs;
    let mut events = Vec::new();
    let mut too_long_reported = false;
    for w in &ast.whens {
        c.next_tmp = 0;
        let flag_idx = c.instrs.len();
        let cond = c.value(&w.cond);
        if let Some((r, t)) = cond {
            if t != Ty::Bool {
                c.diags.push(
                    Diagnostic::error(
                        w.cond.span,
                        "a `when` condition must be a boolean, found a number",
                    )
                    .with_help("compare it, e.g. `(> x 0)`"),
                );
            } else {
                c.store(Reg::Implicit(Implicit::EventFlag), r);
            }
        }
        let body_idx = c.instrs.len();
        for s in &w.body {
            c.next_tmp = 0;
            match s {
                Stmt::Assign {
                    target,
                    target_span,
                    value,
                } => {
                    let _ = c.assign(target, *target_span, value);
                }
                Stmt::Report(_) => {
                    let r = Reg::Implicit(Implicit::ShouldReport);
                    c.emit(Op::Bind, r, r, Reg::Imm(1));
                }
                Stmt::Fallthrough(_) => {
                    let r = Reg::Implicit(Implicit::ShouldFallthrough);
                    c.emit(Op::Bind, r, r, Reg::Imm(1));
                }
            }
        }
        let end = c.instrs.len();
        if end > MAX_INSTRS && !too_long_reported {
            too_long_reported = true;
            c.diags.push(
                Diagnostic::error(
                    w.span,
                    format!("program too long: more than {MAX_INSTRS} instructions at this `when`"),
                )
                .with_help("libccp datapaths accept at most 256 instructions"),
            );
        }
        events.push(Event {
            flag_idx: flag_idx as u32,
            num_flag_instrs: (body_idx - flag_idx) as u32,
            body_idx: body_idx as u32,
            num_body_instrs: (end - body_idx) as u32,
        });
    }
    let clean = !c.diags.iter().any(|d| d.severity == super::Severity::Error);
    for v in c.vars.iter().filter(|_| clean) {
        match v.kind {
            Kind::Local if !v.read => c.diags.push(
                Diagnostic::warning(
                    v.span,
                    format!("local variable `{}` is assigned but never read", v.name),
                )
                .with_help("a typo of a declared name?"),
            ),
            Kind::Report if !v.written => c.diags.push(Diagnostic::warning(
                v.span,
                format!(
                    "report variable `{}` is never assigned; it always reports its initial value",
                    v.name
                ),
            )),
            _ => {}
        }
    }
    if c.diags.iter().any(|d| d.severity == super::Severity::Error) {
        return None;
    }
    let names = c
        .vars
        .iter()
        .filter(|v| v.kind != Kind::Primitive)
        .map(|v| (v.name.clone(), v.reg))
        .collect();
    match Program::new(events, c.instrs) {
        Ok(p) => Some(p.with_names(names)),
        Err(e) => {
            c.diags.push(Diagnostic::error(
                Span::default(),
                format!("internal: generated program invalid: {e}"),
            ));
            None
        }
    }
}
