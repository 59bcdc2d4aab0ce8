//! THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 section 3), and the parenthesised
//! form threads are sent in.
//!
//! REFERENCES follows the RFC's steps (which are Jamie Zawinski's algorithm): containers
//! linked by Message-ID / References / In-Reply-To without ever making a loop, dummies
//! pruned, root set sorted by date, threads with the same base subject merged, siblings
//! sorted by date. Broken headers (missing, truncated, self-referencing or looping
//! References, duplicate Message-IDs) degrade to fewer links, never to an error.

use std::collections::HashMap;

use ringmail_proto::response::data::ThreadNode;

use ringmail_mime::subject::base_subject;

/// The deepest a thread may nest. Mail decides the depth (one message's References, or many
/// messages each answering the last), and the tree is walked recursively (pruning, sorting,
/// writing) and linked by walking up ancestors: an unbounded chain would exhaust the stack or
/// take quadratic time. A link that would nest deeper is not made; that message starts a
/// thread of its own (and may still join its thread by subject).
const MAX_DEPTH: usize = 256;

/// What threading needs of one message.
#[derive(Debug, Clone)]
pub struct ThreadMsg {
    /// The number written in the response (message number or UID).
    pub id: u32,
    /// Message number: the tie-breaker for equal dates.
    pub msn: u32,
    /// Sent date (Date field in UTC, else INTERNALDATE).
    pub date: i64,
    /// The decoded Subject.
    pub subject: String,
    /// Message-ID without angle brackets.
    pub message_id: Option<String>,
    /// First In-Reply-To msg-id.
    pub in_reply_to: Option<String>,
    /// References msg-ids in order.
    pub references: Vec<String>,
}

/// A thread node: a message (an index into the input) or a dummy standing for a message
/// that is referenced but not present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The message, `None` for a dummy.
    pub msg: Option<usize>,
    /// Replies, in date order.
    pub children: Vec<Node>,
}

/// THREAD=ORDEREDSUBJECT: messages grouped by base subject; the first (oldest) message of
/// each group is the parent of all the others.
pub fn ordered_subject(msgs: &[ThreadMsg]) -> Vec<Node> {
    let keys: Vec<String> = msgs
        .iter()
        .map(|m| base_subject(&m.subject).key())
        .collect();
    let mut order: Vec<usize> = (0..msgs.len()).collect();
    order.sort_by(|&a, &b| {
        keys[a]
            .cmp(&keys[b])
            .then(msgs[a].date.cmp(&msgs[b].date))
            .then(msgs[a].msn.cmp(&msgs[b].msn))
    });
    let mut threads: Vec<Node> = Vec::new();
    let mut last_key: Option<&str> = None;
    for i in order {
        match threads.last_mut() {
            Some(parent) if last_key == Some(keys[i].as_str()) => parent.children.push(Node {
                msg: Some(i),
                children: Vec::new(),
            }),
            _ => threads.push(Node {
                msg: Some(i),
                children: Vec::new(),
            }),
        }
        last_key = Some(keys[i].as_str());
    }
    threads.sort_by_key(|t| t.msg.map(|i| (msgs[i].date, msgs[i].msn)));
    threads
}

/// A container of the REFERENCES algorithm.
#[derive(Debug, Default, Clone)]
struct Container {
    msg: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

struct Arena {
    nodes: Vec<Container>,
}

impl Arena {
    fn new_container(&mut self, msg: Option<usize>) -> usize {
        self.nodes.push(Container {
            msg,
            ..Container::default()
        });
        self.nodes.len() - 1
    }

    /// Whether `a` is `b` or one of `b`'s ancestors.
    fn is_ancestor_or_self(&self, a: usize, b: usize) -> bool {
        let mut cur = Some(b);
        let mut steps = 0;
        while let Some(c) = cur {
            if c == a {
                return true;
            }
            steps += 1;
            if steps > MAX_DEPTH {
                // Too deep to link under (and a bound should a loop ever form).
                return true;
            }
            cur = self.nodes.get(c).and_then(|n| n.parent);
        }
        false
    }

    fn unlink(&mut self, child: usize) {
        if let Some(p) = self.nodes[child].parent.take() {
            self.nodes[p].children.retain(|&c| c != child);
        }
    }

    /// Makes `child`, which has no parent, a child of `parent` unless that would make a loop
    /// or nest `parent`'s ancestry beyond [`MAX_DEPTH`].
    fn link(&mut self, parent: usize, child: usize) {
        debug_assert!(self.nodes[child].parent.is_none());
        if self.is_ancestor_or_self(child, parent) {
            return;
        }
        self.nodes[child].parent = Some(parent);
        self.nodes[parent].children.push(child);
    }

    /// Step 1B: the message's own References say who its parent is (`None`: it has none).
    /// A parent it already has (given by another message's References, perhaps truncated
    /// or wrong) is dropped first, then the new link is made unless it would make a loop.
    /// So a message whose true parent would close a loop ends up a root, not under the
    /// guess an earlier message made.
    fn set_parent(&mut self, parent: Option<usize>, child: usize) {
        if self.nodes[child].parent == parent {
            return;
        }
        self.unlink(child);
        if let Some(parent) = parent {
            self.link(parent, child);
        }
    }
}

/// THREAD=REFERENCES.
pub fn references(msgs: &[ThreadMsg]) -> Vec<Node> {
    let mut arena = Arena { nodes: Vec::new() };
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    let mut container_of = Vec::with_capacity(msgs.len());
    // Step 1: containers and links.
    for (i, m) in msgs.iter().enumerate() {
        let own = match m.message_id.as_deref() {
            Some(id) => match by_id.get(id) {
                Some(&c) if arena.nodes[c].msg.is_none() => {
                    arena.nodes[c].msg = Some(i);
                    c
                }
                // A duplicate Message-ID: this message gets a unique one.
                Some(_) => arena.new_container(Some(i)),
                None => {
                    let c = arena.new_container(Some(i));
                    by_id.insert(id, c);
                    c
                }
            },
            None => arena.new_container(Some(i)),
        };
        container_of.push(own);
    }
    for (i, m) in msgs.iter().enumerate() {
        let refs: Vec<&str> = if !m.references.is_empty() {
            // The nearest ancestors are the last ones; deeper ones could not be linked.
            let skip = m.references.len().saturating_sub(MAX_DEPTH);
            m.references[skip..].iter().map(String::as_str).collect()
        } else {
            m.in_reply_to.as_deref().into_iter().collect()
        };
        let mut chain = Vec::with_capacity(refs.len());
        for id in refs {
            let c = match by_id.get(id) {
                Some(&c) => c,
                None => {
                    let c = arena.new_container(None);
                    by_id.insert(id, c);
                    c
                }
            };
            chain.push(c);
        }
        // Step 1A: link consecutive references, keeping links made before.
        for pair in chain.windows(2) {
            let (parent, child) = (pair[0], pair[1]);
            if arena.nodes[child].parent.is_none() {
                arena.link(parent, child);
            }
        }
        // Step 1B: the last reference (or none) is this message's parent.
        arena.set_parent(chain.last().copied(), container_of[i]);
    }
    cap_depth(&mut arena);
    // Step 2: the root set.
    let roots: Vec<usize> = (0..arena.nodes.len())
        .filter(|&c| arena.nodes[c].parent.is_none())
        .collect();
    // Step 4: prune dummies.
    let mut roots = prune(&mut arena, roots, true);
    // Step 5: sort the root set by date (a dummy by its first child).
    for &r in &roots {
        if arena.nodes[r].msg.is_none() {
            let mut kids = std::mem::take(&mut arena.nodes[r].children);
            sort_siblings(&arena, msgs, &mut kids);
            arena.nodes[r].children = kids;
        }
    }
    sort_siblings(&arena, msgs, &mut roots);
    // Step 6: merge threads with the same base subject.
    let roots = merge_subjects(&mut arena, msgs, roots);
    // Step 7: sort every set of siblings by date, deepest first.
    let mut tree: Vec<Node> = roots.iter().map(|&r| build(&arena, r)).collect();
    sort_tree(msgs, &mut tree);
    tree
}

/// Cuts every link below [`MAX_DEPTH`]: `link` bounds a parent's ancestry, but a subtree
/// built first and linked under a parent later (messages answering later ones) can still add
/// up. Iterative, so as not to recurse down the very depth it bounds.
fn cap_depth(arena: &mut Arena) {
    let mut stack: Vec<(usize, usize)> = (0..arena.nodes.len())
        .filter(|&c| arena.nodes[c].parent.is_none())
        .map(|c| (c, 0))
        .collect();
    while let Some((c, depth)) = stack.pop() {
        if depth < MAX_DEPTH {
            stack.extend(arena.nodes[c].children.iter().map(|&k| (k, depth + 1)));
            continue;
        }
        for k in std::mem::take(&mut arena.nodes[c].children) {
            arena.nodes[k].parent = None;
            stack.push((k, 0));
        }
    }
}

/// Step 4: dummies without children go; dummies with children are replaced by them,
/// except at the root where a dummy with several children stays.
fn prune(arena: &mut Arena, level: Vec<usize>, at_root: bool) -> Vec<usize> {
    let mut out = Vec::with_capacity(level.len());
    for c in level {
        let kids = std::mem::take(&mut arena.nodes[c].children);
        let kids = prune(arena, kids, false);
        if arena.nodes[c].msg.is_some() {
            for &k in &kids {
                arena.nodes[k].parent = Some(c);
            }
            arena.nodes[c].children = kids;
            out.push(c);
        } else if kids.is_empty() {
        } else if !at_root || kids.len() == 1 {
            let parent = arena.nodes[c].parent;
            for &k in &kids {
                arena.nodes[k].parent = parent;
            }
            out.extend(kids);
        } else {
            for &k in &kids {
                arena.nodes[k].parent = Some(c);
            }
            arena.nodes[c].children = kids;
            out.push(c);
        }
    }
    out
}

/// The message that stands for a container when sorting and subject-matching: itself, or
/// a dummy's first child.
fn representative(arena: &Arena, c: usize) -> Option<usize> {
    let node = arena.nodes.get(c)?;
    match node.msg {
        Some(m) => Some(m),
        None => node
            .children
            .first()
            .and_then(|&k| representative(arena, k)),
    }
}

fn date_key(arena: &Arena, msgs: &[ThreadMsg], c: usize) -> (i64, u32) {
    representative(arena, c)
        .and_then(|m| msgs.get(m))
        .map_or((i64::MAX, u32::MAX), |m| (m.date, m.msn))
}

fn sort_siblings(arena: &Arena, msgs: &[ThreadMsg], level: &mut [usize]) {
    level.sort_by_key(|&c| date_key(arena, msgs, c));
}

fn merge_subjects(arena: &mut Arena, msgs: &[ThreadMsg], roots: Vec<usize>) -> Vec<usize> {
    let subject_of =
        |arena: &Arena, c: usize| representative(arena, c).map(|m| base_subject(&msgs[m].subject));
    let is_reply = |arena: &Arena, c: usize| {
        arena.nodes[c]
            .msg
            .is_some_and(|m| base_subject(&msgs[m].subject).is_reply)
    };
    // Step 6B: one container per subject.
    let mut table: HashMap<String, usize> = HashMap::new();
    for &r in &roots {
        let Some(subject) = subject_of(arena, r) else {
            continue;
        };
        if subject.text.is_empty() {
            continue;
        }
        let key = subject.key();
        match table.get(&key) {
            None => {
                table.insert(key, r);
            }
            Some(&t) => {
                let t_dummy = arena.nodes[t].msg.is_none();
                let r_dummy = arena.nodes[r].msg.is_none();
                if !t_dummy && (r_dummy || (is_reply(arena, t) && !is_reply(arena, r))) {
                    table.insert(key, r);
                }
            }
        }
    }
    // Step 6C: merge. `slots` is the root set; a merged thread leaves its slot empty, a new
    // dummy takes the slot of the thread it absorbed.
    let mut slots: Vec<Option<usize>> = roots.iter().map(|&r| Some(r)).collect();
    let mut slot_of: HashMap<usize, usize> =
        roots.iter().enumerate().map(|(i, &r)| (r, i)).collect();
    for (slot, &r) in roots.iter().enumerate() {
        let Some(key) = subject_of(arena, r)
            .filter(|s| !s.text.is_empty())
            .map(|s| s.key())
        else {
            continue;
        };
        let Some(&t) = table.get(&key) else { continue };
        if t == r {
            continue;
        }
        let t_dummy = arena.nodes[t].msg.is_none();
        let r_dummy = arena.nodes[r].msg.is_none();
        if t_dummy && r_dummy {
            let kids = std::mem::take(&mut arena.nodes[r].children);
            for k in kids {
                arena.nodes[k].parent = Some(t);
                arena.nodes[t].children.push(k);
            }
        } else if t_dummy || (is_reply(arena, r) && !is_reply(arena, t)) {
            arena.nodes[r].parent = Some(t);
            arena.nodes[t].children.push(r);
        } else {
            let dummy = arena.new_container(None);
            arena.nodes[dummy].children = vec![t, r];
            arena.nodes[t].parent = Some(dummy);
            arena.nodes[r].parent = Some(dummy);
            table.insert(key, dummy);
            if let Some(t_slot) = slot_of.remove(&t) {
                slots[t_slot] = Some(dummy);
                slot_of.insert(dummy, t_slot);
            }
        }
        slots[slot] = None;
        slot_of.remove(&r);
    }
    slots.into_iter().flatten().collect()
}

fn build(arena: &Arena, c: usize) -> Node {
    Node {
        msg: arena.nodes[c].msg,
        children: arena.nodes[c]
            .children
            .iter()
            .map(|&k| build(arena, k))
            .collect(),
    }
}

fn node_date(msgs: &[ThreadMsg], n: &Node) -> (i64, u32) {
    match n.msg {
        Some(m) => msgs
            .get(m)
            .map_or((i64::MAX, u32::MAX), |m| (m.date, m.msn)),
        None => n
            .children
            .first()
            .map_or((i64::MAX, u32::MAX), |c| node_date(msgs, c)),
    }
}

fn sort_tree(msgs: &[ThreadMsg], level: &mut [Node]) {
    for n in level.iter_mut() {
        sort_tree(msgs, &mut n.children);
    }
    level.sort_by_key(|n| node_date(msgs, n));
}

/// A thread tree with the numbers the response shows (message number or UID), as the
/// response writer takes it.
pub fn to_wire(msgs: &[ThreadMsg], node: &Node) -> ThreadNode {
    ThreadNode {
        id: node.msg.map(|m| msgs.get(m).map_or(0, |m| m.id)),
        children: node.children.iter().map(|c| to_wire(msgs, c)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmail_proto::response::data::Thread;
    use ringmail_proto::response::{Response, ResponseWriter};

    /// Writes threads as RFC 5256 sends them: `(3 6 (4 23)(44 7 96))`.
    fn render(msgs: &[ThreadMsg], threads: &[Node], out: &mut String) {
        let threads: Vec<ThreadNode> = threads.iter().map(|t| to_wire(msgs, t)).collect();
        let mut line = Vec::new();
        Thread(&threads).serialize(&mut ResponseWriter::new(&mut line, false));
        // `* THREAD (...)\r\n`: the part after the response's name.
        let body = line
            .strip_prefix(b"* THREAD")
            .unwrap_or_default()
            .trim_ascii();
        out.push_str(&String::from_utf8_lossy(body));
    }

    /// A message numbered `n`, sent at `n` unless `date` says otherwise.
    fn msg(n: u32, subject: &str, id: &str, refs: &[&str]) -> ThreadMsg {
        ThreadMsg {
            id: n,
            msn: n,
            date: i64::from(n),
            subject: subject.to_string(),
            message_id: (!id.is_empty()).then(|| id.to_string()),
            in_reply_to: None,
            references: refs.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn refs(msgs: &[ThreadMsg]) -> String {
        let mut out = String::new();
        render(msgs, &references(msgs), &mut out);
        out
    }

    #[test]
    fn rfc5256_reference_example() {
        // The shape of RFC 5256's example answer: (2)(3 6 (4 23)(44 7 96)).
        let msgs = vec![
            msg(2, "other", "m2", &[]),
            msg(3, "hi", "m3", &[]),
            msg(4, "Re: hi", "m4", &["m3", "m6"]),
            msg(6, "Re: hi", "m6", &["m3"]),
            msg(7, "Re: hi", "m7", &["m3", "m6", "m44"]),
            msg(23, "Re: hi", "m23", &["m3", "m6", "m4"]),
            msg(44, "Re: hi", "m44", &["m3", "m6"]),
            msg(96, "Re: hi", "m96", &["m3", "m6", "m44", "m7"]),
        ];
        assert_eq!(refs(&msgs), "(2)(3 6 (4 23)(44 7 96))");
    }

    #[test]
    fn missing_parent_becomes_a_dummy_root() {
        // Both answer a message that is not in the mailbox: ((3)(5)).
        let msgs = vec![
            msg(3, "Re: gone", "a", &["lost"]),
            msg(5, "Re: gone", "b", &["lost"]),
        ];
        assert_eq!(refs(&msgs), "((3)(5))");
        // A single orphan is promoted instead.
        assert_eq!(refs(&msgs[..1]), "(3)");
    }

    #[test]
    fn broken_references_degrade_gracefully() {
        // Truncated References: only the direct parent is named.
        let truncated = vec![
            msg(1, "topic", "r", &[]),
            msg(2, "Re: topic", "s", &["r"]),
            msg(3, "Re: topic", "t", &["s"]),
        ];
        assert_eq!(refs(&truncated), "(1 2 3)");
        // A loop (each names the other) and a self-reference make no cycle: the first link
        // made (1 answers 2) stands, the one that would close the loop is dropped.
        let looped = vec![
            msg(1, "x", "a", &["b"]),
            msg(2, "y", "b", &["a"]),
            msg(3, "z", "c", &["c"]),
        ];
        assert_eq!(refs(&looped), "(2 1)(3)");
        // Duplicate Message-IDs: the second copy is a message of its own.
        let dup = vec![msg(1, "d", "same", &[]), msg(2, "e", "same", &[])];
        assert_eq!(refs(&dup), "(1)(2)");
        // In-Reply-To stands in for a missing References field.
        let mut irt = vec![msg(1, "p", "p1", &[]), msg(2, "q", "q1", &[])];
        irt[1].in_reply_to = Some("p1".into());
        assert_eq!(refs(&irt), "(1 2)");
    }

    #[test]
    fn own_references_override_a_parent_guessed_by_another_message() {
        // Message 2's References claim "r" answers "p"; what "r" itself says wins (RFC 5256
        // step 1.B: the existing link is broken before the new one is made).
        let says_other = vec![
            msg(1, "one", "p", &[]),
            msg(2, "two", "q", &["p", "r"]),
            msg(3, "three", "r", &["elsewhere"]),
        ];
        assert_eq!(refs(&says_other), "(1)(3 2)");
        // No References at all: the guessed parent goes too ("or NIL").
        let says_none = vec![
            msg(1, "one", "p", &[]),
            msg(2, "two", "q", &["p", "r"]),
            msg(3, "three", "r", &[]),
        ];
        assert_eq!(refs(&says_none), "(1)(3 2)");
        // Its own parent would close a loop (q already answers r): the guessed link is broken
        // all the same and no new one is made, so "r" heads its own thread.
        let would_loop = vec![
            msg(1, "one", "p", &[]),
            msg(2, "two", "q", &["p", "r"]),
            msg(3, "three", "r", &["q"]),
        ];
        assert_eq!(refs(&would_loop), "(1)(3 2)");
        // Without message 1 the guessed parent is a dummy, pruned once it has no children.
        assert_eq!(refs(&would_loop[1..]), "(3 2)");
    }

    /// The deepest nesting of rendered threads.
    fn depth(rendered: &str) -> usize {
        let (mut d, mut max) = (0usize, 0);
        for c in rendered.chars() {
            match c {
                '(' => d += 1,
                ')' => d = d.saturating_sub(1),
                _ => {}
            }
            max = max.max(d);
        }
        max
    }

    #[test]
    fn reply_chains_are_bounded_in_depth() {
        // Ten thousand messages each answering the one before, in both orders, and one
        // message naming a hundred thousand ancestors: every message is answered once, and
        // the tree stays shallow enough to walk recursively.
        let n = 10_000u32;
        let chain: Vec<ThreadMsg> = (1..=n)
            .map(|i| {
                let parent = format!("m{}", i - 1);
                let refs: &[&str] = if i == 1 { &[] } else { &[&parent] };
                msg(i, "deep", &format!("m{i}"), refs)
            })
            .collect();
        let mut reversed = chain.clone();
        reversed.reverse();
        for msgs in [&chain, &reversed] {
            let out = refs(msgs);
            let mut ids: Vec<u32> = out
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|t| t.parse().ok())
                .collect();
            ids.sort_unstable();
            assert_eq!(ids, (1..=n).collect::<Vec<_>>());
            assert!(depth(&out) <= MAX_DEPTH + 3, "depth {}", depth(&out));
        }
        let many: Vec<String> = (0..100_000).map(|i| format!("r{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let out = refs(&[msg(1, "x", "a", &many)]);
        assert_eq!(out, "(1)");
    }

    #[test]
    fn threads_with_one_subject_merge() {
        // No References at all: the reply joins the original by subject.
        let msgs = vec![
            msg(1, "Lunch", "", &[]),
            msg(2, "Re: Lunch", "", &[]),
            msg(3, "Dinner", "", &[]),
            msg(4, "dinner", "", &[]),
        ];
        assert_eq!(refs(&msgs), "(1 2)((3)(4))");
    }

    #[test]
    fn ordered_subject_groups() {
        let msgs = vec![
            msg(1, "b", "", &[]),
            msg(2, "a", "", &[]),
            msg(3, "Re: b", "", &[]),
            msg(4, "Fwd: b", "", &[]),
            msg(5, "Re: a", "", &[]),
            msg(6, "c", "", &[]),
        ];
        let mut out = String::new();
        render(&msgs, &ordered_subject(&msgs), &mut out);
        assert_eq!(out, "(1 (3)(4))(2 5)(6)");
    }
}
