//! The comparison of two runs of the same scenarios and the `docs/fidelity.md` table.

use std::collections::BTreeMap;

use super::Fact;

/// One row: a fact of both runs.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub relied: bool,
    pub standin: String,
    pub real: String,
    /// Why the values may differ (from the suite's list of known differences).
    pub reason: Option<&'static str>,
}

impl Row {
    pub fn same(&self) -> bool {
        self.standin == self.real
    }

    /// A difference the suite must fail on: relied on, or not explained.
    pub fn failure(&self) -> Option<String> {
        if self.same() {
            return None;
        }
        if self.relied {
            return Some(format!(
                "{} (relied on by cluster-upgrade) differs:\n  stand-in: {}\n  real:     {}",
                self.name, self.standin, self.real
            ));
        }
        if self.reason.is_none() {
            return Some(format!(
                "{} differs without a known reason:\n  stand-in: {}\n  real:     {}",
                self.name, self.standin, self.real
            ));
        }
        None
    }
}

/// Pairs the facts by name (a fact missing on one side is "(not observed)").
pub fn rows(
    standin: &[Fact],
    real: &[Fact],
    reasons: &BTreeMap<&'static str, &'static str>,
) -> Vec<Row> {
    let mut order: Vec<String> = Vec::new();
    let mut by_name: BTreeMap<String, (bool, Option<String>, Option<String>)> = BTreeMap::new();
    for (side, facts) in [(0, standin), (1, real)] {
        for fact in facts {
            if !by_name.contains_key(&fact.name) {
                order.push(fact.name.clone());
            }
            let entry = by_name
                .entry(fact.name.clone())
                .or_insert((fact.relied, None, None));
            entry.0 |= fact.relied;
            if side == 0 {
                entry.1 = Some(fact.value.clone());
            } else {
                entry.2 = Some(fact.value.clone());
            }
        }
    }
    order
        .into_iter()
        .map(|name| {
            let (relied, s, r) = by_name.remove(&name).expect("collected");
            let missing = || "(not observed)".to_string();
            let reason = reasons
                .iter()
                .find(|(key, _)| name.contains(*key))
                .map(|(_, reason)| *reason);
            Row {
                name,
                relied,
                standin: s.unwrap_or_else(missing),
                real: r.unwrap_or_else(missing),
                reason,
            }
        })
        .collect()
}

fn cell(text: &str) -> String {
    let one_line = text.replace('\n', " ⏎ ").replace('|', "\\|");
    let short: String = one_line.chars().take(300).collect();
    let cut = if short.len() < one_line.len() {
        "…"
    } else {
        ""
    };
    format!("`{short}{cut}`")
}

/// The Markdown document.
pub fn markdown(rows: &[Row], header: &str) -> String {
    let same = rows.iter().filter(|r| r.same()).count();
    let relied = rows.iter().filter(|r| r.relied).count();
    let mut text = format!(
        "{header}\n\n{} rows: {same} same, {} differ; {relied} rows are relied on by cluster-upgrade \
         (marked ★; each must be the same or the suite fails).\n\n\
         | scenario | stand-in | real | same? | why not |\n|---|---|---|---|---|\n",
        rows.len(),
        rows.len() - same
    );
    for row in rows {
        let star = if row.relied { " ★" } else { "" };
        let why = if row.same() {
            String::new()
        } else {
            row.reason.unwrap_or("UNEXPLAINED").to_string()
        };
        text.push_str(&format!(
            "| {}{star} | {} | {} | {} | {} |\n",
            row.name,
            cell(&row.standin),
            cell(&row.real),
            if row.same() { "same" } else { "differs" },
            why
        ));
    }
    text
}
