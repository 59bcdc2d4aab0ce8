//! The check and code generation step: every command and test is validated against its
//! RFC (arguments, `require`d capabilities, variable syntax, regular expressions, limits)
//! and turned into the flat instruction list of `program`.

use std::collections::{HashMap, HashSet};

use crate::error::{CompileError, Pos};
use crate::limits::Limits;
use crate::matching::{AddressPart, Comparator, MatchType, RelOp};
use crate::message::{is_address_header, is_field_name};
use crate::parser::{Arg, Command, Test};
use crate::program::*;

/// The capabilities this implementation knows, as `require` names them.
pub const CAPABILITIES: &[&str] = &[
    "fileinto",
    "reject",
    "ereject",
    "envelope",
    "encoded-character",
    "imap4flags",
    "copy",
    "body",
    "variables",
    "vacation",
    "vacation-seconds",
    "relational",
    "subaddress",
    "date",
    "index",
    "mailbox",
    "include",
    "duplicate",
    "editheader",
    "special-use",
    "regex",
    "comparator-i;octet",
    "comparator-i;ascii-casemap",
    "comparator-i;ascii-numeric",
];

pub(crate) struct Compiled {
    pub ops: Vec<(Op, u32)>,
    pub tests: Vec<TestOp>,
    pub locals: usize,
    pub capabilities: Vec<String>,
}

pub(crate) fn compile(cmds: &[Command], limits: &Limits) -> Result<Compiled, CompileError> {
    let mut c = Compiler {
        limits,
        caps: 0,
        vars: false,
        enc: false,
        ops: Vec::new(),
        tests: Vec::new(),
        labels: Vec::new(),
        locals: HashMap::new(),
        globals: HashSet::new(),
    };
    let mut start = 0;
    // RFC 5228 §3.2: require comes before any other command.
    for cmd in cmds {
        if cmd.name != "require" {
            break;
        }
        c.require(cmd)?;
        start += 1;
    }
    c.block(&cmds[start..])?;
    let labels = std::mem::take(&mut c.labels);
    for (op, _) in c.ops.iter_mut() {
        match op {
            Op::Jump(t) | Op::Test { target: t, .. } => *t = labels[*t],
            _ => {}
        }
    }
    let mut capabilities: Vec<String> = CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(i, _)| c.caps & (1 << i) != 0)
        .map(|(_, s)| s.to_string())
        .collect();
    capabilities.sort();
    Ok(Compiled {
        ops: c.ops,
        tests: c.tests,
        locals: c.locals.len(),
        capabilities,
    })
}

struct Compiler<'a> {
    limits: &'a Limits,
    /// Required capabilities, one bit per entry of CAPABILITIES.
    caps: u32,
    /// "variables" and "encoded-character", asked for every string.
    vars: bool,
    enc: bool,
    ops: Vec<(Op, u32)>,
    tests: Vec<TestOp>,
    /// Jump targets by label; resolved to instruction indexes at the end.
    labels: Vec<usize>,
    locals: HashMap<String, usize>,
    globals: HashSet<String>,
}

enum Param {
    Flag,
    Str,
    List,
    Num,
}

struct Tagged<'a> {
    name: String,
    pos: Pos,
    value: Option<&'a Arg>,
}

/// The parts of a command's arguments: tags (with their values) and positional ones.
struct Args<'a> {
    what: String,
    pos: Pos,
    tags: Vec<Tagged<'a>>,
    positional: Vec<&'a Arg>,
}

impl<'a> Args<'a> {
    fn take(&mut self, tag: &str) -> Option<Tagged<'a>> {
        let i = self.tags.iter().position(|t| t.name == tag)?;
        Some(self.tags.remove(i))
    }

    fn has(&mut self, tag: &str) -> bool {
        self.take(tag).is_some()
    }

    fn expect_count(&self, n: usize) -> Result<(), CompileError> {
        if self.positional.len() != n {
            let got = self.positional.len();
            let at = self.positional.get(n).map_or(self.pos, |a| a.pos());
            return Err(CompileError::new(
                at,
                format!("{} takes {n} positional argument(s), not {got}", self.what),
            ));
        }
        Ok(())
    }
}

/// Where the common test tags (comparator, match type, address part, index) ended up.
#[derive(Default)]
struct Common {
    comparator: Option<(Comparator, Pos)>,
    match_type: Option<(MatchType, Pos)>,
    address_part: Option<AddressPart>,
    index: Option<Index>,
}

#[derive(Clone, Copy)]
struct Allow {
    address_part: bool,
    index: bool,
}

/// deleteheader has :index/:last of its own (RFC 5293 §5), without the index extension.
const DELETEHEADER: Allow = Allow {
    address_part: false,
    index: true,
};

fn expect_str<'a>(a: &'a Arg, what: &str) -> Result<(&'a str, Pos), CompileError> {
    match a {
        Arg::Str(s, p) => Ok((s, *p)),
        Arg::List(l, p) if l.len() == 1 => Ok((&l[0], *p)),
        other => Err(CompileError::new(
            other.pos(),
            format!("{what} must be a string"),
        )),
    }
}

fn expect_list<'a>(a: &'a Arg, what: &str) -> Result<(&'a [String], Pos), CompileError> {
    match a {
        Arg::Str(s, p) => Ok((std::slice::from_ref(s), *p)),
        Arg::List(l, p) => Ok((l, *p)),
        other => Err(CompileError::new(
            other.pos(),
            format!("{what} must be a string list"),
        )),
    }
}

fn expect_num(a: &Arg, what: &str) -> Result<u64, CompileError> {
    match a {
        Arg::Number(n, _) => Ok(*n),
        other => Err(CompileError::new(
            other.pos(),
            format!("{what} must be a number"),
        )),
    }
}

impl Compiler<'_> {
    fn has(&self, cap: &str) -> bool {
        CAPABILITIES
            .iter()
            .position(|c| *c == cap)
            .is_some_and(|i| self.caps & (1 << i) != 0)
    }

    fn add_cap(&mut self, cap: &str) {
        if let Some(i) = CAPABILITIES.iter().position(|c| *c == cap) {
            self.caps |= 1 << i;
        }
        self.vars = self.has("variables");
        self.enc = self.has("encoded-character");
    }

    fn need(&self, cap: &str, pos: Pos, what: &str) -> Result<(), CompileError> {
        if self.has(cap) {
            Ok(())
        } else {
            Err(CompileError::new(
                pos,
                format!("{what} requires the \"{cap}\" extension (require \"{cap}\";)"),
            ))
        }
    }

    fn label(&mut self) -> usize {
        self.labels.push(usize::MAX);
        self.labels.len() - 1
    }

    fn place(&mut self, l: usize) {
        self.labels[l] = self.ops.len();
    }

    fn emit(&mut self, op: Op, pos: Pos) {
        self.ops.push((op, pos.line));
    }

    fn require(&mut self, cmd: &Command) -> Result<(), CompileError> {
        if cmd.block.is_some() || !cmd.tests.is_empty() || cmd.args.len() != 1 {
            return Err(CompileError::new(
                cmd.pos,
                "require takes one string list and ends with ';'",
            ));
        }
        let (names, pos) = expect_list(&cmd.args[0], "require's argument")?;
        for n in names {
            let lower = n.to_ascii_lowercase();
            let Some(cap) = CAPABILITIES.iter().find(|c| **c == lower) else {
                return Err(CompileError::new(
                    pos,
                    format!(
                        "unknown extension \"{n}\" (this server supports: {})",
                        CAPABILITIES.join(" ")
                    ),
                ));
            };
            self.add_cap(cap);
            // RFC 6131 extends vacation; RFC 5429 ereject comes with reject's semantics.
            if *cap == "vacation-seconds" {
                self.add_cap("vacation");
            }
        }
        Ok(())
    }

    fn split<'a>(
        &self,
        what: &str,
        pos: Pos,
        args: &'a [Arg],
        spec: &dyn Fn(&str) -> Option<Param>,
    ) -> Result<Args<'a>, CompileError> {
        let mut tags: Vec<Tagged> = Vec::new();
        let mut positional = Vec::new();
        let mut it = args.iter().peekable();
        while let Some(a) = it.next() {
            match a {
                Arg::Tag(t, p) => {
                    if !positional.is_empty() {
                        return Err(CompileError::new(
                            *p,
                            format!("tag :{t} must come before the positional arguments of {what}"),
                        ));
                    }
                    let Some(param) = spec(t) else {
                        return Err(CompileError::new(
                            *p,
                            format!("unknown tag :{t} for {what}"),
                        ));
                    };
                    let value = match param {
                        Param::Flag => None,
                        Param::Str | Param::List | Param::Num => {
                            let Some(v) = it.next() else {
                                return Err(CompileError::new(
                                    *p,
                                    format!(":{t} needs an argument"),
                                ));
                            };
                            match (&param, v) {
                                (Param::Num, Arg::Number(..)) => {}
                                (Param::Num, _) => {
                                    return Err(CompileError::new(
                                        v.pos(),
                                        format!(":{t} needs a number"),
                                    ))
                                }
                                (Param::Str, Arg::Str(..)) => {}
                                (Param::Str, Arg::List(l, _)) if l.len() == 1 => {}
                                (Param::Str, _) => {
                                    return Err(CompileError::new(
                                        v.pos(),
                                        format!(":{t} needs a string"),
                                    ))
                                }
                                (Param::List, Arg::Str(..) | Arg::List(..)) => {}
                                (Param::List, _) => {
                                    return Err(CompileError::new(
                                        v.pos(),
                                        format!(":{t} needs a string list"),
                                    ))
                                }
                                (Param::Flag, _) => unreachable!(),
                            }
                            Some(v)
                        }
                    };
                    if tags.iter().any(|x| x.name == *t) {
                        return Err(CompileError::new(*p, format!("tag :{t} given twice")));
                    }
                    tags.push(Tagged {
                        name: t.clone(),
                        pos: *p,
                        value,
                    });
                }
                other => positional.push(other),
            }
        }
        Ok(Args {
            what: what.to_string(),
            pos,
            tags,
            positional,
        })
    }

    // ---- strings and variables -------------------------------------------------------

    /// Parses `${...}` references (variables) and encoded characters in a script string.
    fn str(&mut self, s: &str, pos: Pos) -> Result<Str, CompileError> {
        let (vars, enc) = (self.vars, self.enc);
        if !s.contains("${") || !(vars || enc) {
            return Ok(Str::Lit(s.to_string()));
        }
        let mut pieces: Vec<Piece> = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(i) = rest.find("${") {
            lit.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let Some(close) = after.find('}') else {
                lit.push_str(&rest[i..]);
                rest = "";
                break;
            };
            let inner = &after[..close];
            if enc {
                if let Some(decoded) = encoded_char(inner, pos)? {
                    lit.push_str(&decoded);
                    rest = &after[close + 1..];
                    continue;
                }
            }
            if vars {
                if let Some(piece) = self.var_piece(inner, pos)? {
                    if !lit.is_empty() {
                        pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                    }
                    pieces.push(piece);
                    rest = &after[close + 1..];
                    continue;
                }
            }
            // Not a reference: taken literally (RFC 5229 §3), and scanning goes on after "${".
            lit.push_str("${");
            rest = after;
        }
        lit.push_str(rest);
        if pieces.is_empty() {
            return Ok(Str::Lit(lit));
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        Ok(Str::Tpl(pieces))
    }

    fn strs(&mut self, l: &[String], pos: Pos) -> Result<Vec<Str>, CompileError> {
        l.iter().map(|s| self.str(s, pos)).collect()
    }

    /// `inner` of `${inner}` as a variable reference, or None when it is not one.
    fn var_piece(&mut self, inner: &str, pos: Pos) -> Result<Option<Piece>, CompileError> {
        if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) {
            let n = inner.trim_start_matches('0');
            let n: usize = if n.is_empty() {
                0
            } else if n.len() > 2 {
                99
            } else {
                n.parse().unwrap_or(99)
            };
            return Ok(Some(Piece::Match(n)));
        }
        let parts: Vec<&str> = inner.split('.').collect();
        if !parts.iter().all(|p| is_identifier(p)) {
            return Ok(None);
        }
        Ok(Some(Piece::Var(self.var_ref(inner, pos)?)))
    }

    /// A variable name (possibly namespaced) as a reference.
    fn var_ref(&mut self, name: &str, pos: Pos) -> Result<VarRef, CompileError> {
        let lower = name.to_ascii_lowercase();
        if let Some(g) = lower.strip_prefix("global.") {
            if !self.has("include") {
                return Err(CompileError::new(
                    pos,
                    format!("variable \"{name}\": the global namespace requires the \"include\" extension"),
                ));
            }
            if !is_identifier(g) {
                return Err(CompileError::new(
                    pos,
                    format!("invalid variable name \"{name}\""),
                ));
            }
            return Ok(VarRef::Global(g.to_string()));
        }
        if lower.contains('.') {
            return Err(CompileError::new(
                pos,
                format!("variable \"{name}\": unknown namespace"),
            ));
        }
        if !is_identifier(&lower) {
            return Err(CompileError::new(
                pos,
                format!("invalid variable name \"{name}\""),
            ));
        }
        if self.globals.contains(&lower) {
            return Ok(VarRef::Global(lower));
        }
        let n = self.locals.len();
        if !self.locals.contains_key(&lower) && n >= self.limits.max_variables {
            return Err(CompileError::new(
                pos,
                format!(
                    "more variables than the limit of {}",
                    self.limits.max_variables
                ),
            ));
        }
        Ok(VarRef::Local(*self.locals.entry(lower).or_insert(n)))
    }

    // ---- commands ----------------------------------------------------------------------

    fn block(&mut self, cmds: &[Command]) -> Result<(), CompileError> {
        let mut i = 0;
        while i < cmds.len() {
            let cmd = &cmds[i];
            match cmd.name.as_str() {
                "if" => {
                    let mut chain = vec![cmd];
                    while let Some(next) = cmds.get(i + chain.len()) {
                        if next.name == "elsif" || next.name == "else" {
                            chain.push(next);
                            if next.name == "else" {
                                break;
                            }
                        } else {
                            break;
                        }
                    }
                    i += chain.len();
                    self.if_chain(&chain)?;
                    continue;
                }
                "elsif" | "else" => {
                    return Err(CompileError::new(
                        cmd.pos,
                        format!("{} without a preceding if", cmd.name),
                    ))
                }
                "require" => {
                    return Err(CompileError::new(
                        cmd.pos,
                        "require must come before any other command",
                    ))
                }
                _ => self.command(cmd)?,
            }
            i += 1;
        }
        Ok(())
    }

    fn if_chain(&mut self, chain: &[&Command]) -> Result<(), CompileError> {
        let end = self.label();
        for (k, cmd) in chain.iter().enumerate() {
            let Some(block) = &cmd.block else {
                return Err(CompileError::new(
                    cmd.pos,
                    format!("{} needs a block {{ ... }}", cmd.name),
                ));
            };
            if !cmd.args.is_empty() {
                return Err(CompileError::new(
                    cmd.args[0].pos(),
                    format!("{} takes no arguments besides its test", cmd.name),
                ));
            }
            if cmd.name == "else" {
                if !cmd.tests.is_empty() {
                    return Err(CompileError::new(cmd.pos, "else takes no test"));
                }
                self.block(block)?;
            } else {
                if cmd.tests.len() != 1 || cmd.test_list {
                    return Err(CompileError::new(
                        cmd.pos,
                        format!("{} needs exactly one test", cmd.name),
                    ));
                }
                let next = self.label();
                self.cond(&cmd.tests[0], false, next)?;
                self.block(block)?;
                if k + 1 < chain.len() {
                    self.emit(Op::Jump(end), cmd.pos);
                }
                self.place(next);
            }
        }
        self.place(end);
        Ok(())
    }

    /// Code that jumps to `target` when the test's result is `jump_if` and falls through
    /// otherwise (short-circuit evaluation of allof/anyof/not).
    fn cond(&mut self, t: &Test, jump_if: bool, target: usize) -> Result<(), CompileError> {
        match t.name.as_str() {
            "true" | "false" => {
                self.no_args(t)?;
                if (t.name == "true") == jump_if {
                    self.emit(Op::Jump(target), t.pos);
                }
                Ok(())
            }
            "not" => {
                if !t.args.is_empty() || t.tests.len() != 1 || t.test_list {
                    return Err(CompileError::new(t.pos, "not takes exactly one test"));
                }
                self.cond(&t.tests[0], !jump_if, target)
            }
            "allof" | "anyof" => {
                if !t.args.is_empty() || !t.test_list || t.tests.is_empty() {
                    return Err(CompileError::new(
                        t.pos,
                        format!("{} takes a test list: {}(test, test, ...)", t.name, t.name),
                    ));
                }
                // allof jumps on false as soon as one is false; anyof on true likewise.
                let short = t.name == "anyof";
                if jump_if == short {
                    for sub in &t.tests {
                        self.cond(sub, jump_if, target)?;
                    }
                } else {
                    let skip = self.label();
                    let (last, init) = t.tests.split_last().expect("non-empty");
                    for sub in init {
                        self.cond(sub, short, skip)?;
                    }
                    self.cond(last, jump_if, target)?;
                    self.place(skip);
                }
                Ok(())
            }
            _ => {
                let op = self.test(t)?;
                self.tests.push(op);
                let test = self.tests.len() - 1;
                self.emit(
                    Op::Test {
                        test,
                        jump_if,
                        target,
                    },
                    t.pos,
                );
                Ok(())
            }
        }
    }

    fn no_args(&self, t: &Test) -> Result<(), CompileError> {
        if !t.args.is_empty() || !t.tests.is_empty() {
            return Err(CompileError::new(
                t.pos,
                format!("{} takes no arguments", t.name),
            ));
        }
        Ok(())
    }

    fn command(&mut self, cmd: &Command) -> Result<(), CompileError> {
        let pos = cmd.pos;
        let name = cmd.name.as_str();
        if cmd.block.is_some() {
            return Err(CompileError::new(
                pos,
                format!("{name} does not take a block; end it with ';'"),
            ));
        }
        if !cmd.tests.is_empty() {
            return Err(CompileError::new(
                pos,
                format!("{name} does not take a test"),
            ));
        }
        let has = |c: &str| self.has(c);
        let flags_ok = has("imap4flags");
        let op = match name {
            "stop" | "discard" | "return" => {
                let a = self.split(name, pos, &cmd.args, &|_| None)?;
                a.expect_count(0)?;
                match name {
                    "stop" => Op::Stop,
                    "discard" => Op::Discard,
                    _ => {
                        self.need("include", pos, "return")?;
                        Op::Return
                    }
                }
            }
            "keep" => {
                let mut a = self.split(name, pos, &cmd.args, &|t| match t {
                    "flags" if flags_ok => Some(Param::List),
                    _ => None,
                })?;
                a.expect_count(0)?;
                let flags = self.flag_list(a.take("flags"))?;
                Op::Keep { flags }
            }
            "fileinto" => {
                self.need("fileinto", pos, "fileinto")?;
                let (copy, create, su) = (has("copy"), has("mailbox"), has("special-use"));
                let mut a = self.split(name, pos, &cmd.args, &|t| match t {
                    "flags" if flags_ok => Some(Param::List),
                    "copy" if copy => Some(Param::Flag),
                    "create" if create => Some(Param::Flag),
                    "specialuse" if su => Some(Param::Str),
                    _ => None,
                })?;
                a.expect_count(1)?;
                let (mb, mpos) = expect_str(a.positional[0], "the mailbox name")?;
                if mb.is_empty() {
                    return Err(CompileError::new(mpos, "the mailbox name is empty"));
                }
                let mailbox = self.str(mb, mpos)?;
                let flags = self.flag_list(a.take("flags"))?;
                let special_use = match a.take("specialuse") {
                    Some(t) => {
                        let (s, p) = expect_str(t.value.as_ref().expect("param"), ":specialuse")?;
                        check_special_use(s, p)?;
                        Some(self.str(s, p)?)
                    }
                    None => None,
                };
                Op::FileInto {
                    mailbox,
                    flags,
                    copy: a.has("copy"),
                    create: a.has("create"),
                    special_use,
                }
            }
            "redirect" => {
                let copy = has("copy");
                let mut a = self.split(name, pos, &cmd.args, &|t| match t {
                    "copy" if copy => Some(Param::Flag),
                    _ => None,
                })?;
                a.expect_count(1)?;
                let (addr, apos) = expect_str(a.positional[0], "the redirect address")?;
                let address = self.str(addr, apos)?;
                if let Some(l) = address.as_lit() {
                    if !valid_address(l) {
                        return Err(CompileError::new(
                            apos,
                            format!("\"{l}\" is not a valid address to redirect to"),
                        ));
                    }
                }
                Op::Redirect {
                    address,
                    copy: a.has("copy"),
                }
            }
            "reject" | "ereject" => {
                self.need(name, pos, name)?;
                let a = self.split(name, pos, &cmd.args, &|_| None)?;
                a.expect_count(1)?;
                let (r, rpos) = expect_str(a.positional[0], "the reason")?;
                Op::Reject {
                    reason: self.str(r, rpos)?,
                    extended: name == "ereject",
                }
            }
            "vacation" => self.vacation(cmd)?,
            "setflag" | "addflag" | "removeflag" => {
                self.need("imap4flags", pos, name)?;
                let a = self.split(name, pos, &cmd.args, &|_| None)?;
                let (var, list) = match a.positional.len() {
                    1 => (None, &a.positional[0]),
                    2 => {
                        let (v, vp) = expect_str(a.positional[0], "the variable name")?;
                        self.need("variables", vp, "a flag variable")?;
                        (Some(self.var_ref(v, vp)?), &a.positional[1])
                    }
                    _ => {
                        return Err(CompileError::new(
                            pos,
                            format!("{name} takes [variable] and a list of flags"),
                        ))
                    }
                };
                let (l, lp) = expect_list(list, "the flag list")?;
                let flags = self.strs(l, lp)?;
                let op = match name {
                    "setflag" => FlagOp::Set,
                    "addflag" => FlagOp::Add,
                    _ => FlagOp::Remove,
                };
                Op::Flags { op, var, flags }
            }
            "set" => self.set(cmd)?,
            "addheader" => {
                self.need("editheader", pos, name)?;
                let mut a = self.split(name, pos, &cmd.args, &|t| match t {
                    "last" => Some(Param::Flag),
                    _ => None,
                })?;
                a.expect_count(2)?;
                let (n, np) = expect_str(a.positional[0], "the header name")?;
                let (v, vp) = expect_str(a.positional[1], "the header value")?;
                let name_s = self.str(n, np)?;
                if let Some(l) = name_s.as_lit() {
                    check_edit_name(l, np, self.limits)?;
                }
                let value = self.str(v, vp)?;
                if let Some(l) = value.as_lit() {
                    if l.len() > self.limits.max_header_value {
                        return Err(CompileError::new(
                            vp,
                            format!(
                                "header value longer than the limit of {} bytes",
                                self.limits.max_header_value
                            ),
                        ));
                    }
                }
                Op::AddHeader {
                    last: a.has("last"),
                    name: name_s,
                    value,
                }
            }
            "deleteheader" => {
                self.need("editheader", pos, name)?;
                let mut a = self.split_common(name, pos, &cmd.args, DELETEHEADER, &|_| None)?;
                let common = self.common(&mut a, DELETEHEADER, false)?;
                if a.positional.is_empty() || a.positional.len() > 2 {
                    return Err(CompileError::new(
                        pos,
                        "deleteheader takes a header name and optionally a list of value patterns",
                    ));
                }
                let (n, np) = expect_str(a.positional[0], "the header name")?;
                let name_s = self.str(n, np)?;
                if let Some(l) = name_s.as_lit() {
                    check_edit_name(l, np, self.limits)?;
                }
                let m = match a.positional.get(1) {
                    Some(k) => Some(self.make_match(&common, k)?),
                    None => {
                        if common.match_type.is_some() || common.comparator.is_some() {
                            return Err(CompileError::new(
                                pos,
                                "deleteheader: a comparator or match type needs value patterns",
                            ));
                        }
                        None
                    }
                };
                Op::DeleteHeader {
                    index: common.index,
                    name: name_s,
                    m,
                }
            }
            "include" => {
                self.need("include", pos, name)?;
                let mut a = self.split(name, pos, &cmd.args, &|t| match t {
                    "personal" | "global" | "once" | "optional" => Some(Param::Flag),
                    _ => None,
                })?;
                a.expect_count(1)?;
                let (personal, global) = (a.has("personal"), a.has("global"));
                if personal && global {
                    return Err(CompileError::new(
                        pos,
                        "include: :personal and :global exclude each other",
                    ));
                }
                let (n, np) = expect_str(a.positional[0], "the script name")?;
                if n.is_empty() || n.contains('/') || n.chars().any(char::is_control) {
                    return Err(CompileError::new(
                        np,
                        format!("include: \"{n}\" is not a valid script name"),
                    ));
                }
                if n.contains("${") && self.has("variables") {
                    return Err(CompileError::new(
                        np,
                        "include: the script name must be a constant string",
                    ));
                }
                Op::Include {
                    location: if global {
                        IncludeLocation::Global
                    } else {
                        IncludeLocation::Personal
                    },
                    once: a.has("once"),
                    optional: a.has("optional"),
                    name: n.to_string(),
                }
            }
            "global" => {
                self.need("include", pos, name)?;
                self.need("variables", pos, name)?;
                let a = self.split(name, pos, &cmd.args, &|_| None)?;
                a.expect_count(1)?;
                let (l, lp) = expect_list(a.positional[0], "the variable names")?;
                for v in l {
                    let lower = v.to_ascii_lowercase();
                    let lower = lower.strip_prefix("global.").unwrap_or(&lower).to_string();
                    if !is_identifier(&lower) {
                        return Err(CompileError::new(
                            lp,
                            format!("global: invalid variable name \"{v}\""),
                        ));
                    }
                    if self.locals.contains_key(&lower) {
                        return Err(CompileError::new(
                            lp,
                            format!(
                                "global: variable \"{v}\" was already used as a local variable"
                            ),
                        ));
                    }
                    self.globals.insert(lower);
                }
                return Ok(());
            }
            _ => return Err(CompileError::new(pos, format!("unknown command '{name}'"))),
        };
        self.emit(op, pos);
        if self.ops.len() > 1_000_000 {
            return Err(CompileError::new(pos, "script too large"));
        }
        Ok(())
    }

    fn flag_list(&mut self, t: Option<Tagged<'_>>) -> Result<Option<Vec<Str>>, CompileError> {
        match t {
            Some(t) => {
                let (l, p) = expect_list(t.value.as_ref().expect("param"), ":flags")?;
                Ok(Some(self.strs(l, p)?))
            }
            None => Ok(None),
        }
    }

    fn vacation(&mut self, cmd: &Command) -> Result<Op, CompileError> {
        let pos = cmd.pos;
        self.need("vacation", pos, "vacation")?;
        let secs = self.has("vacation-seconds");
        let mut a = self.split("vacation", pos, &cmd.args, &|t| match t {
            "days" => Some(Param::Num),
            "seconds" if secs => Some(Param::Num),
            "subject" | "from" | "handle" => Some(Param::Str),
            "addresses" => Some(Param::List),
            "mime" => Some(Param::Flag),
            _ => None,
        })?;
        a.expect_count(1)?;
        let days = a.take("days");
        let seconds = a.take("seconds");
        let (period, is_secs) = match (days, seconds) {
            (Some(d), None) => (
                Some(expect_num(d.value.as_ref().expect("param"), ":days")?),
                false,
            ),
            (None, Some(s)) => (
                Some(expect_num(s.value.as_ref().expect("param"), ":seconds")?),
                true,
            ),
            (None, None) => (None, false),
            (Some(_), Some(s)) => {
                return Err(CompileError::new(
                    s.pos,
                    "vacation: :days and :seconds exclude each other",
                ))
            }
        };
        // Each optional string with its text as written (for the default handle).
        let mut opt_str =
            |c: &mut Self, tag: &str| -> Result<(Option<Str>, Option<String>), CompileError> {
                match a.take(tag) {
                    Some(t) => {
                        let (s, p) = expect_str(t.value.as_ref().expect("param"), tag)?;
                        Ok((Some(c.str(s, p)?), Some(s.to_string())))
                    }
                    None => Ok((None, None)),
                }
            };
        let (subject, subject_src) = opt_str(self, "subject")?;
        let (from, from_src) = opt_str(self, "from")?;
        let (handle, _) = opt_str(self, "handle")?;
        if let Some(Str::Lit(f)) = &from {
            if crate::message::parse_addresses(f)
                .first()
                .is_none_or(|a| !valid_address(a))
            {
                return Err(CompileError::new(
                    pos,
                    format!("vacation: :from \"{f}\" is not a valid address"),
                ));
            }
        }
        let addresses = match a.take("addresses") {
            Some(t) => {
                let (l, p) = expect_list(t.value.as_ref().expect("param"), ":addresses")?;
                self.strs(l, p)?
            }
            None => Vec::new(),
        };
        let mime = a.has("mime");
        let (r, rp) = expect_str(a.positional[0], "the vacation reason")?;
        if r.len() > self.limits.max_vacation_reason {
            return Err(CompileError::new(
                rp,
                format!(
                    "vacation reason longer than the limit of {} bytes",
                    self.limits.max_vacation_reason
                ),
            ));
        }
        let reason = self.str(r, rp)?;
        // RFC 5230 §4.2: without :handle, one made of the texts as the script writes them
        // (before variables are substituted, so one vacation text is one handle whatever
        // the message), in the form Pigeonhole uses.
        let default_handle = format!(
            "{r}{}{}{}",
            subject_src.as_deref().unwrap_or("<default-subject>"),
            from_src.as_deref().unwrap_or("<default-from>"),
            if mime { "<MIME>" } else { "<NO-MIME>" }
        );
        Ok(Op::Vacation(Box::new(VacationOp {
            default_handle,
            period,
            seconds: is_secs,
            subject,
            from,
            addresses,
            mime,
            handle,
            reason,
        })))
    }

    fn set(&mut self, cmd: &Command) -> Result<Op, CompileError> {
        let pos = cmd.pos;
        self.need("variables", pos, "set")?;
        let regex = self.has("regex");
        let a = self.split("set", pos, &cmd.args, &|t| match t {
            "lower" | "upper" | "lowerfirst" | "upperfirst" | "quotewildcard" | "length" => {
                Some(Param::Flag)
            }
            "quoteregex" if regex => Some(Param::Flag),
            _ => None,
        })?;
        a.expect_count(2)?;
        let mut modifiers: Vec<Modifier> = Vec::new();
        for t in &a.tags {
            let m = match t.name.as_str() {
                "lower" => Modifier::Lower,
                "upper" => Modifier::Upper,
                "lowerfirst" => Modifier::LowerFirst,
                "upperfirst" => Modifier::UpperFirst,
                "quotewildcard" => Modifier::QuoteWildcard,
                "quoteregex" => Modifier::QuoteRegex,
                _ => Modifier::Length,
            };
            if modifiers.iter().any(|x| x.precedence() == m.precedence()) {
                return Err(CompileError::new(
                    t.pos,
                    format!(
                        "set: :{} conflicts with another modifier of the same precedence",
                        t.name
                    ),
                ));
            }
            modifiers.push(m);
        }
        modifiers.sort_by_key(|m| std::cmp::Reverse(m.precedence()));
        let (n, np) = expect_str(a.positional[0], "the variable name")?;
        if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CompileError::new(
                np,
                format!("set: cannot assign to the match variable \"{n}\""),
            ));
        }
        let var = self.var_ref(n, np)?;
        let (v, vp) = expect_str(a.positional[1], "the value")?;
        let value = self.str(v, vp)?;
        Ok(Op::Set {
            var,
            value,
            modifiers,
        })
    }

    // ---- tests ---------------------------------------------------------------------------

    fn split_common<'a>(
        &self,
        what: &str,
        pos: Pos,
        args: &'a [Arg],
        allow: Allow,
        extra: &dyn Fn(&str) -> Option<Param>,
    ) -> Result<Args<'a>, CompileError> {
        self.split(what, pos, args, &|t| match t {
            "comparator" => Some(Param::Str),
            "is" | "contains" | "matches" | "regex" => Some(Param::Flag),
            "count" | "value" => Some(Param::Str),
            "all" | "localpart" | "domain" | "user" | "detail" if allow.address_part => {
                Some(Param::Flag)
            }
            "index" if allow.index => Some(Param::Num),
            "last" if allow.index => Some(Param::Flag),
            _ => extra(t),
        })
    }

    fn common(
        &mut self,
        a: &mut Args,
        allow: Allow,
        index_ext: bool,
    ) -> Result<Common, CompileError> {
        let mut c = Common::default();
        let tags = std::mem::take(&mut a.tags);
        let mut rest = Vec::new();
        let mut last: Option<Pos> = None;
        for t in tags {
            let p = t.pos;
            match t.name.as_str() {
                "comparator" => {
                    let (n, np) = expect_str(t.value.as_ref().expect("param"), ":comparator")?;
                    let Some(cmp) = Comparator::by_name(n) else {
                        return Err(CompileError::new(np, format!("unknown comparator \"{n}\"")));
                    };
                    if cmp == Comparator::AsciiNumeric {
                        self.need(
                            "comparator-i;ascii-numeric",
                            np,
                            "comparator i;ascii-numeric",
                        )?;
                    }
                    c.comparator = Some((cmp, p));
                }
                "is" | "contains" | "matches" | "regex" | "count" | "value" => {
                    if c.match_type.is_some() {
                        return Err(CompileError::new(p, "only one match type may be given"));
                    }
                    let mt = match t.name.as_str() {
                        "is" => MatchType::Is,
                        "contains" => MatchType::Contains,
                        "matches" => MatchType::Matches,
                        "regex" => {
                            self.need("regex", p, ":regex")?;
                            MatchType::Regex
                        }
                        other => {
                            self.need("relational", p, &format!(":{other}"))?;
                            let (r, rp) = expect_str(t.value.as_ref().expect("param"), other)?;
                            let Some(rel) = RelOp::by_name(r) else {
                                return Err(CompileError::new(
                                    rp,
                                    format!(
                                        "\"{r}\" is not a relational operator (gt ge lt le eq ne)"
                                    ),
                                ));
                            };
                            if other == "count" {
                                MatchType::Count(rel)
                            } else {
                                MatchType::Value(rel)
                            }
                        }
                    };
                    c.match_type = Some((mt, p));
                }
                "all" | "localpart" | "domain" | "user" | "detail" if allow.address_part => {
                    if c.address_part.is_some() {
                        return Err(CompileError::new(p, "only one address part may be given"));
                    }
                    c.address_part = Some(match t.name.as_str() {
                        "all" => AddressPart::All,
                        "localpart" => AddressPart::LocalPart,
                        "domain" => AddressPart::Domain,
                        name => {
                            self.need("subaddress", p, &format!(":{name}"))?;
                            if name == "user" {
                                AddressPart::User
                            } else {
                                AddressPart::Detail
                            }
                        }
                    });
                }
                "index" if allow.index => {
                    if index_ext {
                        self.need("index", p, ":index")?;
                    }
                    let n = expect_num(t.value.as_ref().expect("param"), ":index")?;
                    if n == 0 {
                        return Err(CompileError::new(p, ":index counts from 1"));
                    }
                    c.index = Some(Index {
                        n: usize::try_from(n).unwrap_or(usize::MAX),
                        last: false,
                    });
                }
                "last" if allow.index => {
                    if index_ext {
                        self.need("index", p, ":last")?;
                    }
                    last = Some(p);
                }
                _ => rest.push(t),
            }
        }
        if let Some(p) = last {
            match &mut c.index {
                Some(i) => i.last = true,
                None => return Err(CompileError::new(p, ":last needs :index")),
            }
        }
        a.tags = rest;
        Ok(c)
    }

    fn make_match(&mut self, c: &Common, keys: &Arg) -> Result<Match, CompileError> {
        let (cmp, _) = c
            .comparator
            .unwrap_or((Comparator::AsciiCasemap, Pos::default()));
        let (mt, mpos) = c.match_type.unwrap_or((MatchType::Is, Pos::default()));
        if cmp == Comparator::AsciiNumeric
            && matches!(
                mt,
                MatchType::Contains | MatchType::Matches | MatchType::Regex
            )
        {
            return Err(CompileError::new(
                mpos,
                "comparator i;ascii-numeric supports only :is, :count and :value",
            ));
        }
        let (l, lp) = expect_list(keys, "the key list")?;
        let keys = self.strs(l, lp)?;
        let mut regexes = Vec::new();
        if mt == MatchType::Regex {
            for k in &keys {
                regexes.push(match k.as_lit() {
                    Some(p) => Some(
                        build_regex(p, cmp, self.limits).map_err(|e| CompileError::new(lp, e))?,
                    ),
                    None => None,
                });
            }
        }
        Ok(Match {
            comparator: cmp,
            match_type: mt,
            keys: Keys { keys, regexes },
            set_match_vars: self.has("variables"),
        })
    }

    fn header_names(&mut self, a: &Arg, address: bool) -> Result<Vec<Str>, CompileError> {
        let (l, p) = expect_list(a, "the header names")?;
        for n in l {
            if n.contains("${") && self.has("variables") {
                continue;
            }
            if !is_field_name(n) {
                return Err(CompileError::new(
                    p,
                    format!("\"{n}\" is not a valid header field name"),
                ));
            }
            if address && !is_address_header(n) {
                return Err(CompileError::new(
                    p,
                    format!(
                        "the address test does not accept header \"{n}\": it holds no addresses"
                    ),
                ));
            }
        }
        self.strs(l, p)
    }

    fn zone(&mut self, a: &mut Args, original_ok: bool) -> Result<Zone, CompileError> {
        let zone = a.take("zone");
        let orig = a.take("originalzone");
        match (zone, orig) {
            (Some(_), Some(o)) => Err(CompileError::new(
                o.pos,
                ":zone and :originalzone exclude each other",
            )),
            (None, Some(_)) if original_ok => Ok(Zone::Original),
            (None, Some(o)) => Err(CompileError::new(o.pos, "unknown tag :originalzone")),
            (Some(z), None) => {
                let (s, p) = expect_str(z.value.as_ref().expect("param"), ":zone")?;
                match crate::date::parse_zone(s) {
                    Some(off) => Ok(Zone::Fixed(off)),
                    None => Err(CompileError::new(
                        p,
                        format!("\"{s}\" is not a time zone offset (+hhmm or -hhmm)"),
                    )),
                }
            }
            (None, None) => Ok(Zone::Local),
        }
    }

    fn date_part(&mut self, a: &Arg) -> Result<Str, CompileError> {
        let (s, p) = expect_str(a, "the date part")?;
        let d = self.str(s, p)?;
        if let Some(l) = d.as_lit() {
            if !crate::date::is_date_part(l) {
                return Err(CompileError::new(
                    p,
                    format!("\"{l}\" is not a date part (year month day date julian hour minute second time iso8601 std11 zone weekday)"),
                ));
            }
        }
        Ok(d)
    }

    fn test(&mut self, t: &Test) -> Result<TestOp, CompileError> {
        let pos = t.pos;
        let name = t.name.as_str();
        if !t.tests.is_empty() {
            return Err(CompileError::new(
                pos,
                format!("{name} does not take a test"),
            ));
        }
        let plain = Allow {
            address_part: false,
            index: false,
        };
        let op = match name {
            "exists" => {
                let a = self.split(name, pos, &t.args, &|_| None)?;
                a.expect_count(1)?;
                TestOp::Exists(self.header_names(a.positional[0], false)?)
            }
            "size" => {
                let mut a = self.split(name, pos, &t.args, &|t| match t {
                    "over" | "under" => Some(Param::Flag),
                    _ => None,
                })?;
                a.expect_count(1)?;
                let (over, under) = (a.has("over"), a.has("under"));
                if over == under {
                    return Err(CompileError::new(pos, "size needs one of :over or :under"));
                }
                TestOp::Size {
                    over,
                    limit: expect_num(a.positional[0], "the size")?,
                }
            }
            "header" => {
                let allow = Allow {
                    address_part: false,
                    index: true,
                };
                let mut a = self.split_common(name, pos, &t.args, allow, &|_| None)?;
                let c = self.common(&mut a, allow, true)?;
                a.expect_count(2)?;
                let names = self.header_names(a.positional[0], false)?;
                TestOp::Header {
                    names,
                    m: self.make_match(&c, a.positional[1])?,
                    index: c.index,
                }
            }
            "address" => {
                let allow = Allow {
                    address_part: true,
                    index: true,
                };
                let mut a = self.split_common(name, pos, &t.args, allow, &|_| None)?;
                let c = self.common(&mut a, allow, true)?;
                a.expect_count(2)?;
                let names = self.header_names(a.positional[0], true)?;
                TestOp::Address {
                    names,
                    part: c.address_part.unwrap_or(AddressPart::All),
                    m: self.make_match(&c, a.positional[1])?,
                    index: c.index,
                }
            }
            "envelope" => {
                self.need("envelope", pos, name)?;
                let allow = Allow {
                    address_part: true,
                    index: false,
                };
                let mut a = self.split_common(name, pos, &t.args, allow, &|_| None)?;
                let c = self.common(&mut a, allow, true)?;
                a.expect_count(2)?;
                let (l, lp) = expect_list(a.positional[0], "the envelope parts")?;
                for p in l {
                    let templated = p.contains("${") && self.has("variables");
                    if !templated && !matches!(p.to_ascii_lowercase().as_str(), "from" | "to") {
                        return Err(CompileError::new(
                            lp,
                            format!("\"{p}\" is not an envelope part (from, to)"),
                        ));
                    }
                }
                TestOp::Envelope {
                    parts: self.strs(l, lp)?,
                    part: c.address_part.unwrap_or(AddressPart::All),
                    m: self.make_match(&c, a.positional[1])?,
                }
            }
            "body" => {
                self.need("body", pos, name)?;
                let mut a = self.split_common(name, pos, &t.args, plain, &|t| match t {
                    "raw" | "text" => Some(Param::Flag),
                    "content" => Some(Param::List),
                    _ => None,
                })?;
                let c = self.common(&mut a, plain, true)?;
                a.expect_count(1)?;
                let raw = a.take("raw");
                let text = a.take("text");
                let content = a.take("content");
                let transform = match (raw, text, content) {
                    (Some(_), None, None) => BodyTransform::Raw,
                    (None, Some(_), None) | (None, None, None) => BodyTransform::Text,
                    (None, None, Some(ct)) => {
                        let (l, lp) = expect_list(ct.value.as_ref().expect("param"), ":content")?;
                        BodyTransform::Content(self.strs(l, lp)?)
                    }
                    _ => {
                        return Err(CompileError::new(
                            pos,
                            "body: only one of :raw, :text and :content may be given",
                        ))
                    }
                };
                TestOp::Body {
                    transform,
                    m: self.make_match(&c, a.positional[0])?,
                }
            }
            "date" | "currentdate" => {
                self.need("date", pos, name)?;
                let is_date = name == "date";
                let allow = Allow {
                    address_part: false,
                    index: is_date,
                };
                let mut a = self.split_common(name, pos, &t.args, allow, &|t| match t {
                    "zone" => Some(Param::Str),
                    "originalzone" if is_date => Some(Param::Flag),
                    _ => None,
                })?;
                let c = self.common(&mut a, allow, true)?;
                let zone = self.zone(&mut a, is_date)?;
                if is_date {
                    a.expect_count(3)?;
                    let (h, hp) = expect_str(a.positional[0], "the header name")?;
                    let templated = h.contains("${") && self.has("variables");
                    if !templated && !is_field_name(h) {
                        return Err(CompileError::new(
                            hp,
                            format!("\"{h}\" is not a valid header field name"),
                        ));
                    }
                    let header = self.str(h, hp)?;
                    let date_part = self.date_part(a.positional[1])?;
                    TestOp::Date {
                        header,
                        zone,
                        date_part,
                        m: self.make_match(&c, a.positional[2])?,
                        index: c.index,
                    }
                } else {
                    a.expect_count(2)?;
                    let date_part = self.date_part(a.positional[0])?;
                    TestOp::CurrentDate {
                        zone,
                        date_part,
                        m: self.make_match(&c, a.positional[1])?,
                    }
                }
            }
            "string" => {
                self.need("variables", pos, name)?;
                let mut a = self.split_common(name, pos, &t.args, plain, &|_| None)?;
                let c = self.common(&mut a, plain, true)?;
                a.expect_count(2)?;
                let (l, lp) = expect_list(a.positional[0], "the source strings")?;
                TestOp::String {
                    sources: self.strs(l, lp)?,
                    m: self.make_match(&c, a.positional[1])?,
                }
            }
            "hasflag" => {
                self.need("imap4flags", pos, name)?;
                let mut a = self.split_common(name, pos, &t.args, plain, &|_| None)?;
                let c = self.common(&mut a, plain, true)?;
                let (vars, keys) = match a.positional.len() {
                    1 => (None, a.positional[0]),
                    2 => {
                        let (l, lp) = expect_list(a.positional[0], "the variable names")?;
                        self.need("variables", lp, "hasflag with variables")?;
                        let mut v = Vec::new();
                        for n in l {
                            v.push(self.var_ref(n, lp)?);
                        }
                        (Some(v), a.positional[1])
                    }
                    _ => {
                        return Err(CompileError::new(
                            pos,
                            "hasflag takes [variables] and a list of flags",
                        ))
                    }
                };
                TestOp::HasFlag {
                    vars,
                    m: self.make_match(&c, keys)?,
                }
            }
            "mailboxexists" => {
                self.need("mailbox", pos, name)?;
                let a = self.split(name, pos, &t.args, &|_| None)?;
                a.expect_count(1)?;
                let (l, lp) = expect_list(a.positional[0], "the mailbox names")?;
                TestOp::MailboxExists(self.strs(l, lp)?)
            }
            "specialuse_exists" => {
                self.need("special-use", pos, name)?;
                let a = self.split(name, pos, &t.args, &|_| None)?;
                let (mailbox, uses) = match a.positional.len() {
                    1 => (None, &a.positional[0]),
                    2 => {
                        let (m, mp) = expect_str(a.positional[0], "the mailbox name")?;
                        (Some(self.str(m, mp)?), &a.positional[1])
                    }
                    _ => {
                        return Err(CompileError::new(
                            pos,
                            "specialuse_exists takes [mailbox] and a list of special-use flags",
                        ))
                    }
                };
                let (l, lp) = expect_list(uses, "the special-use flags")?;
                for u in l {
                    if !(u.contains("${") && self.has("variables")) {
                        check_special_use(u, lp)?;
                    }
                }
                TestOp::SpecialUseExists {
                    mailbox,
                    uses: self.strs(l, lp)?,
                }
            }
            "duplicate" => {
                self.need("duplicate", pos, name)?;
                let mut a = self.split(name, pos, &t.args, &|t| match t {
                    "handle" | "header" | "uniqueid" => Some(Param::Str),
                    "seconds" => Some(Param::Num),
                    "last" => Some(Param::Flag),
                    _ => None,
                })?;
                a.expect_count(0)?;
                let mut s = |c: &mut Self, tag: &str| -> Result<Option<Str>, CompileError> {
                    match a.take(tag) {
                        Some(t) => {
                            let (v, p) = expect_str(t.value.as_ref().expect("param"), tag)?;
                            Ok(Some(c.str(v, p)?))
                        }
                        None => Ok(None),
                    }
                };
                let handle = s(self, "handle")?;
                let header = s(self, "header")?;
                let unique = s(self, "uniqueid")?;
                let id = match (header, unique) {
                    (Some(_), Some(_)) => {
                        return Err(CompileError::new(
                            pos,
                            "duplicate: :header and :uniqueid exclude each other",
                        ))
                    }
                    (Some(h), None) => {
                        if let Some(l) = h.as_lit() {
                            if !is_field_name(l) {
                                return Err(CompileError::new(
                                    pos,
                                    format!("\"{l}\" is not a valid header field name"),
                                ));
                            }
                        }
                        DupId::Header(h)
                    }
                    (None, Some(u)) => DupId::Unique(u),
                    (None, None) => DupId::MessageId,
                };
                let seconds = match a.take("seconds") {
                    Some(t) => Some(expect_num(t.value.as_ref().expect("param"), ":seconds")?),
                    None => None,
                };
                TestOp::Duplicate {
                    handle,
                    id,
                    seconds,
                    last: a.has("last"),
                }
            }
            "true" | "false" | "not" | "allof" | "anyof" => unreachable!("handled by cond"),
            _ => return Err(CompileError::new(pos, format!("unknown test '{name}'"))),
        };
        Ok(op)
    }
}

pub(crate) fn is_identifier(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// `${hex:...}` / `${unicode:...}` (RFC 5228 §2.4.2.4); None when `inner` is neither.
fn encoded_char(inner: &str, pos: Pos) -> Result<Option<String>, CompileError> {
    let Some(colon) = inner.find(':') else {
        return Ok(None);
    };
    let (kind, body) = (&inner[..colon], &inner[colon + 1..]);
    let kind = kind.to_ascii_lowercase();
    let words: Vec<&str> = body
        .split([' ', '\t', '\r', '\n'])
        .filter(|w| !w.is_empty())
        .collect();
    if kind == "hex" {
        let mut bytes = Vec::new();
        for w in &words {
            if w.len() > 2 || !w.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(None);
            }
            bytes.push(u8::from_str_radix(w, 16).map_err(|_| CompileError::new(pos, "bad hex"))?);
        }
        return match String::from_utf8(bytes) {
            Ok(s) => Ok(Some(s)),
            Err(_) => Err(CompileError::new(
                pos,
                format!("${{{inner}}} does not encode valid UTF-8"),
            )),
        };
    }
    if kind == "unicode" {
        let mut out = String::new();
        for w in &words {
            if w.len() > 6 || !w.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(None);
            }
            let v = u32::from_str_radix(w, 16).map_err(|_| CompileError::new(pos, "bad hex"))?;
            match char::from_u32(v) {
                Some(c) => out.push(c),
                None => {
                    return Err(CompileError::new(
                        pos,
                        format!("${{{inner}}}: {w} is not a Unicode scalar value"),
                    ))
                }
            }
        }
        return Ok(Some(out));
    }
    Ok(None)
}

pub(crate) fn build_regex(
    pattern: &str,
    cmp: Comparator,
    limits: &Limits,
) -> Result<regex::Regex, String> {
    if pattern.len() > limits.max_regex_pattern {
        return Err(format!(
            "regular expression longer than the limit of {} bytes",
            limits.max_regex_pattern
        ));
    }
    regex::RegexBuilder::new(pattern)
        .case_insensitive(cmp == Comparator::AsciiCasemap)
        .size_limit(limits.max_regex_compiled)
        .dfa_size_limit(limits.max_regex_compiled)
        .nest_limit(64)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(n) => format!(
                "regular expression \"{pattern}\" compiles larger than the limit of {n} bytes"
            ),
            e => format!(
                "invalid regular expression \"{pattern}\": {}",
                first_line(&e.to_string())
            ),
        })
}

fn first_line(s: &str) -> String {
    s.lines().last().unwrap_or(s).trim().to_string()
}

/// A mailbox address for redirect (RFC 5228 §4.2): local@domain, nothing around it.
pub(crate) fn valid_address(a: &str) -> bool {
    let Some(at) = a.rfind('@') else {
        return false;
    };
    let (local, domain) = (&a[..at], &a[at + 1..]);
    !local.is_empty()
        && !domain.is_empty()
        && !a
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'))
        && domain.split('.').all(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || c == '[' || c == ']' || c == ':')
        })
}

fn check_special_use(s: &str, pos: Pos) -> Result<(), CompileError> {
    let ok = s.starts_with('\\')
        && s.len() > 1
        && s[1..]
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(CompileError::new(
            pos,
            format!("\"{s}\" is not a special-use flag (such as \\Junk)"),
        ))
    }
}

fn check_edit_name(n: &str, pos: Pos, limits: &Limits) -> Result<(), CompileError> {
    if !is_field_name(n) {
        return Err(CompileError::new(
            pos,
            format!("\"{n}\" is not a valid header field name"),
        ));
    }
    if n.len() > limits.max_header_name {
        return Err(CompileError::new(
            pos,
            format!(
                "header name longer than the limit of {} bytes",
                limits.max_header_name
            ),
        ));
    }
    if crate::eval::is_protected_header(n) {
        return Err(CompileError::new(
            pos,
            format!("header \"{n}\" is protected: it may not be added or deleted"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse;

    fn compiled(src: &str) -> Compiled {
        compile(&parse(src, &Limits::default()).unwrap(), &Limits::default()).unwrap()
    }

    fn set_value(src: &str) -> Str {
        let c = compiled(src);
        match &c.ops[0].0 {
            Op::Set { value, .. } => value.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn variable_references() {
        let v = |s: &str| {
            set_value(&format!(
                "require [\"variables\", \"encoded-character\", \"include\"]; set \"x\" \"{s}\";"
            ))
        };
        assert_eq!(v("plain"), Str::Lit("plain".into()));
        assert!(matches!(v("a${x}b"), Str::Tpl(p) if p.len() == 3));
        assert!(matches!(v("${01}"), Str::Tpl(p) if p == [Piece::Match(1)]));
        assert!(
            matches!(v("${global.g}"), Str::Tpl(p) if p == [Piece::Var(VarRef::Global("g".into()))])
        );
        // Not references: taken literally.
        assert_eq!(v("${a b}"), Str::Lit("${a b}".into()));
        assert_eq!(v("${}"), Str::Lit("${}".into()));
        assert_eq!(v("${x"), Str::Lit("${x".into()));
        assert_eq!(v("$${hex:24}{x}"), Str::Lit("$${x}".into()));
        // Without "variables", "${x}" is just text.
        let c = compiled("require \"fileinto\"; fileinto \"${x}\";");
        assert!(matches!(&c.ops[0].0, Op::FileInto { mailbox: Str::Lit(m), .. } if m == "${x}"));
    }

    #[test]
    fn variable_names_share_slots_case_insensitively() {
        let c = compiled(
            "require \"variables\"; set \"Abc\" \"1\"; set \"aBC\" \"2\"; set \"other\" \"3\";",
        );
        assert_eq!(c.locals, 2);
    }

    #[test]
    fn short_circuit_code() {
        // anyof(true, X): X is never compiled to a test that runs before the jump.
        let c = compiled("if anyof(true, header :is \"a\" \"b\") { discard; }");
        assert!(matches!(c.ops[0].0, Op::Jump(_)), "{:?}", c.ops);
        // allof(false, ...) jumps straight past the block.
        let c = compiled("if allof(false, exists \"x\") { discard; } keep;");
        let Op::Jump(t) = c.ops[0].0 else {
            panic!("{:?}", c.ops)
        };
        assert!(matches!(c.ops[t].0, Op::Keep { .. }), "{:?}", c.ops);
    }
}
