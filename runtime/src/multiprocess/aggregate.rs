//! Aggregation: many validated files in, one set of families out — for a scrape, or for the
//! archive a compaction writes.
//!
//! Counters, histograms and summaries are summed (whole-number counter increments are summed as
//! integers, so totals stay exact). Gauges combine by their family's [`GaugeMode`], with Python's
//! names and meanings; `live*` modes and `all`/`liveall` read only what the archive cannot hold
//! (see the [module docs](super)).
//!
//! The same name declared differently by two files (another kind, other label names or buckets,
//! another gauge mode — a rolling deploy that changed a metric) cannot be summed: the first
//! declaration read wins (sources are read live files first, then dead ones, then the archive)
//! and the other file's series of that family are skipped and counted as a conflict.

use std::borrow::Cow;
use std::collections::HashMap as StdHashMap;

/// Keys come from files; the hasher is seeded per process, so crafted keys cannot target it.
type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;

use super::file::{self, FamilyDecl, is_stamped};
use super::read::{Parsed, Ser, key_values};
use crate::metric::GaugeMode;
use crate::model::{MetricFamily, MetricKind, Series, Value};

/// One file to aggregate, and whether its writer is alive.
pub(crate) struct Source<'a> {
    pub(crate) parsed: Parsed<'a>,
    pub(crate) live: bool,
}

/// What the result is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A scrape: every mode as Python means it.
    Scrape,
    /// Folding dead files into the archive: per-process and live-only gauges are dropped.
    Archive,
}

#[derive(Clone, Debug)]
enum Acc {
    Counter { whole: u64, frac: f64 },
    Gauge { value: f64, ts: u64, seen: bool },
    Histogram { counts: Vec<u64>, sum: f64 },
    Summary { count: u64, sum: f64 },
    Info,
}

struct FamAcc<'a> {
    name: &'a str,
    help: &'a str,
    kind: MetricKind,
    mode: GaugeMode,
    labels: Vec<&'a str>,
    bounds: Vec<f64>,
    /// Series by key and, for `all`/`liveall` gauges, the writing process's label.
    series: HashMap<(&'a [u8], u32), Acc>,
}

/// The aggregate of some sources.
pub(crate) struct Aggregate<'a> {
    families: Vec<FamAcc<'a>>,
    by_name: HashMap<&'a str, usize>,
    /// `pid` label values, indexed by source position (`all`/`liveall` gauges).
    pid_labels: Vec<String>,
    /// Series skipped because their family was declared differently elsewhere.
    pub(crate) conflicts: u64,
    /// Updates the writers could not record (their files' `dropped` cells), summed.
    pub(crate) dropped: u64,
}

/// Reads a `mostrecent` gauge's value and timestamp under its sequence lock. A writer killed
/// in the middle of an update leaves the sequence odd for good: after a few tries the last
/// values read are taken as they are.
fn read_stamped(s: &Ser<'_>) -> (f64, u64) {
    let mut last = (0.0, 0);
    for _ in 0..64 {
        let before = s.cell(2);
        let value = f64::from_bits(s.cell(0));
        let ts = s.cell(1);
        last = (value, ts);
        if before % 2 == 0 && s.cell(2) == before {
            break;
        }
        std::hint::spin_loop();
    }
    last
}

impl<'a> Aggregate<'a> {
    /// Aggregates `sources` (read in order: put live files first, the archive last).
    pub(crate) fn new(sources: &[Source<'a>], purpose: Purpose) -> Self {
        let mut agg = Aggregate {
            families: Vec::new(),
            by_name: HashMap::default(),
            pid_labels: Vec::new(),
            conflicts: 0,
            dropped: 0,
        };
        // Two containers sharing a volume may both have a pid 1: disambiguate their labels.
        let mut pid_count: HashMap<u32, usize> = HashMap::default();
        for s in sources {
            *pid_count.entry(s.parsed.info.pid).or_default() += 1;
        }
        agg.pid_labels = sources
            .iter()
            .map(|s| {
                let info = s.parsed.info;
                if pid_count[&info.pid] > 1 {
                    format!("{}-{:08x}", info.pid, info.id as u32)
                } else {
                    info.pid.to_string()
                }
            })
            .collect();
        for (i, s) in sources.iter().enumerate() {
            agg.add(i, s, purpose);
        }
        agg
    }

    /// Finds or creates the accumulator for a file's family; `None` on a conflict.
    fn resolve(&mut self, f: &super::read::Fam<'a>) -> Option<usize> {
        let per_process =
            f.kind == MetricKind::Gauge && matches!(f.mode, GaugeMode::All | GaugeMode::LiveAll);
        if per_process && f.label_names().any(|n| n == "pid") {
            return None; // the `pid` label we add would be duplicated
        }
        if let Some(&i) = self.by_name.get(f.name) {
            let acc = &self.families[i];
            let same = acc.kind == f.kind
                && acc.labels.iter().copied().eq(f.label_names())
                && acc.bounds.iter().copied().eq(f.bounds())
                && (f.kind != MetricKind::Gauge || acc.mode == f.mode);
            return same.then_some(i);
        }
        self.families.push(FamAcc {
            name: f.name,
            help: f.help,
            kind: f.kind,
            mode: f.mode,
            labels: f.label_names().collect(),
            bounds: f.bounds().collect(),
            series: HashMap::default(),
        });
        self.by_name.insert(f.name, self.families.len() - 1);
        Some(self.families.len() - 1)
    }

    fn add(&mut self, index: usize, src: &Source<'a>, purpose: Purpose) {
        let p = &src.parsed;
        self.dropped = self.dropped.saturating_add(p.info.dropped);
        // A process may declare one name more than once: the builder methods (`buckets`,
        // `mode`, ...) make a new declaration, and one without labels creates its series at
        // once. The last declaration of a name in a file is the one in use; earlier ones are
        // ignored.
        let mut last: HashMap<&str, usize> = HashMap::default();
        for (i, f) in p.families.iter().enumerate() {
            last.insert(f.name, i);
        }
        let superseded: Vec<bool> = (0..p.families.len())
            .map(|i| last[p.families[i].name] != i)
            .collect();
        let resolved: Vec<Option<usize>> = p
            .families
            .iter()
            .enumerate()
            .map(|(i, f)| {
                if superseded[i] {
                    return None;
                }
                let per_process = f.kind == MetricKind::Gauge
                    && matches!(f.mode, GaugeMode::All | GaugeMode::LiveAll);
                if purpose == Purpose::Archive
                    && f.kind == MetricKind::Gauge
                    && (per_process || f.mode.is_live())
                {
                    return None; // not archived: dropped with the dead process (documented)
                }
                self.resolve(f)
            })
            .collect();
        for s in p.series() {
            let Some(fi) = resolved[s.fam] else {
                let f = &p.families[s.fam];
                let archived_away = purpose == Purpose::Archive && f.kind == MetricKind::Gauge;
                if !archived_away && !superseded[s.fam] {
                    self.conflicts += 1;
                }
                continue;
            };
            let fam = &mut self.families[fi];
            let mut pid = u32::MAX;
            if fam.kind == MetricKind::Gauge {
                if fam.mode.is_live() && !src.live {
                    continue;
                }
                if matches!(fam.mode, GaugeMode::All | GaugeMode::LiveAll) {
                    pid = index as u32;
                }
            }
            let kind = fam.kind;
            let mode = fam.mode;
            let n_bounds = fam.bounds.len();
            let acc = fam
                .series
                .entry((s.key, pid))
                .or_insert_with(|| match kind {
                    MetricKind::Counter => Acc::Counter {
                        whole: 0,
                        frac: 0.0,
                    },
                    MetricKind::Histogram => Acc::Histogram {
                        counts: vec![0; n_bounds + 1],
                        sum: 0.0,
                    },
                    MetricKind::Summary => Acc::Summary { count: 0, sum: 0.0 },
                    MetricKind::Info => Acc::Info,
                    _ => Acc::Gauge {
                        value: 0.0,
                        ts: 0,
                        seen: false,
                    },
                });
            merge(acc, &s, mode);
        }
    }

    /// The families, for a scrape (sorted by name; series by label values).
    pub(crate) fn into_families(self) -> Vec<MetricFamily> {
        let pid_labels = self.pid_labels;
        let mut out: Vec<MetricFamily> = self
            .families
            .into_iter()
            .map(|f| {
                let mut series: Vec<_> = f.series.into_iter().collect();
                series.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                let mut family = MetricFamily::new(f.name, f.help, f.kind);
                family.series = series
                    .into_iter()
                    .map(|((key, pid), acc)| {
                        let mut labels: Vec<(Cow<'static, str>, String)> = f
                            .labels
                            .iter()
                            .zip(key_values(key))
                            .map(|(n, v)| (Cow::Owned(n.to_string()), v.to_owned()))
                            .collect();
                        if pid != u32::MAX {
                            labels.push((Cow::Borrowed("pid"), pid_labels[pid as usize].clone()));
                        }
                        Series {
                            labels,
                            value: acc.into_value(&f.bounds),
                            created: None,
                        }
                    })
                    .collect();
                family
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Encodes the archive: header, every family and series, the absorbed file ids.
    pub(crate) fn encode_archive(&self, id: u64, absorbed: &[u64]) -> Vec<u8> {
        let mut out = file::encode_header(id, 0, file::FLAG_ARCHIVE, 0, 0);
        let mut order: Vec<&FamAcc<'_>> = self.families.iter().collect();
        order.sort_by_key(|f| f.name);
        let mut cells = Vec::new();
        for f in order {
            let family_off = out.len() as u32;
            file::encode_family(
                &mut out,
                &FamilyDecl {
                    name: f.name,
                    help: f.help,
                    kind: f.kind,
                    mode: f.mode,
                    label_names: &f.labels,
                    bounds: &f.bounds,
                },
            );
            let mut series: Vec<_> = f.series.iter().collect();
            series.sort_unstable_by(|a, b| a.0.cmp(b.0));
            for ((key, _), acc) in series {
                cells.clear();
                match acc {
                    Acc::Counter { whole, frac } => cells.extend([*whole, frac.to_bits()]),
                    Acc::Gauge { value, ts, .. } => {
                        cells.push(value.to_bits());
                        if is_stamped(f.mode) {
                            cells.extend([*ts, 0]);
                        }
                    }
                    Acc::Histogram { counts, sum } => {
                        cells.extend_from_slice(counts);
                        cells.push(sum.to_bits());
                    }
                    Acc::Summary { count, sum } => cells.extend([*count, sum.to_bits()]),
                    Acc::Info => {}
                }
                file::encode_series(&mut out, family_off, &cells, key);
            }
        }
        file::encode_absorbed(&mut out, absorbed);
        let used = out.len() as u64;
        out[file::H_USED..file::H_USED + 8].copy_from_slice(&used.to_ne_bytes());
        out[file::H_DROPPED..file::H_DROPPED + 8].copy_from_slice(&self.dropped.to_ne_bytes());
        out
    }
}

fn merge(acc: &mut Acc, s: &Ser<'_>, mode: GaugeMode) {
    match acc {
        Acc::Counter { whole, frac } => {
            *whole = whole.saturating_add(s.cell(0));
            *frac += f64::from_bits(s.cell(1));
        }
        Acc::Histogram { counts, sum } => {
            for (i, c) in counts.iter_mut().enumerate() {
                *c = c.saturating_add(s.cell(i));
            }
            *sum += f64::from_bits(s.cell(counts.len()));
        }
        Acc::Summary { count, sum } => {
            *count = count.saturating_add(s.cell(0));
            *sum += f64::from_bits(s.cell(1));
        }
        Acc::Info => {}
        Acc::Gauge { value, ts, seen } => {
            let (v, t) = if is_stamped(mode) {
                read_stamped(s)
            } else {
                (f64::from_bits(s.cell(0)), 0)
            };
            let first = !*seen;
            *seen = true;
            match mode {
                GaugeMode::All | GaugeMode::LiveAll => *value = v,
                GaugeMode::Sum | GaugeMode::LiveSum => *value += v,
                GaugeMode::Max | GaugeMode::LiveMax => {
                    if first || v > *value {
                        *value = v
                    }
                }
                GaugeMode::Min | GaugeMode::LiveMin => {
                    if first || v < *value {
                        *value = v
                    }
                }
                GaugeMode::MostRecent | GaugeMode::LiveMostRecent => {
                    if first || t > *ts {
                        *value = v;
                        *ts = t;
                    }
                }
            }
        }
    }
}

impl Acc {
    fn into_value(self, bounds: &[f64]) -> Value {
        match self {
            Acc::Counter { whole, frac } => Value::Counter(whole as f64 + frac),
            Acc::Gauge { value, .. } => Value::Gauge(value),
            Acc::Histogram { counts, sum } => Value::Histogram {
                bounds: bounds.to_vec(),
                counts,
                sum,
            },
            Acc::Summary { count, sum } => Value::Summary { count, sum },
            Acc::Info => Value::Info,
        }
    }
}
