//! Aggregation: many validated files in, one set of families out — for a scrape, or for the
//! archive a compaction writes.
//!
//! Counters, histograms and summaries are summed (whole-number counter increments are summed as
//! integers, so totals stay exact; floating-point totals are summed exactly and rounded once,
//! see `exact.rs`, so that they never go backwards when files are folded into the archive).
//! Gauges combine by their family's [`GaugeMode`], with Python's names and meanings (a
//! `sum`/`livesum` gauge summed exactly too, so that its value does not depend on the order the
//! files are added in); `live*` modes and `all`/`liveall` read only what the archive cannot
//! hold (see the [module docs](super)).
//!
//! Native histograms (`native_merge.rs`) are merged per series by Prometheus' rule (lowest
//! schema, widest zero threshold, then add), their count and sum being the classic cells summed
//! as above; the archive keeps the merged buckets in their sparse form. Exemplars: per bucket
//! (and per counter series) the newest one over the live processes; dead processes' exemplars
//! are not read, and never archived (an exemplar points at a recent trace, it is not a total).
//! Several series records of one key in one file (stripes) are summed into one row like
//! records of different files.
//!
//! The same name declared differently by two files (another kind, other label names or buckets,
//! another gauge mode — a rolling deploy that changed a metric) cannot be summed: the first
//! declaration read wins (sources are read live files first, then dead ones, then the archive)
//! and the other file's series of that family are skipped and counted as a conflict.

use std::borrow::Cow;
use std::collections::HashMap as StdHashMap;
use std::sync::{Mutex, PoisonError};

/// Keys come from files; the hasher is seeded per process, so crafted keys cannot target it.
type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;

use super::exact::Partials;
use super::file::{self, EXT_NATIVE_SETTINGS, EXT_NATIVE_SPARSE, NATIVE_SETTINGS_LEN};
use super::native_merge;
use super::read::{Info, Parsed, SeriesRecord, key_values, words};
use super::threads;
use crate::exemplar::{SLOT_WORDS, SlotData};
use crate::layout::{Layout, counter, gauge, histogram, summary};
use crate::metric::{FamilyDecl, GaugeMode};
use crate::model::NativeBuckets;
use crate::model::{MetricFamily, MetricKind, Series, Value};

/// One file to aggregate, and whether its writer is alive.
pub(crate) struct InputFile<'a> {
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

/// Where a family's series are accumulated: one row of `width` 8-byte slots per series, in one
/// flat vector (no allocation per series), found through a map from (key, process) to the row.
///
/// A row is laid out like the cells of a series in a file (`layout.rs`): counters, histograms
/// and summaries exactly so; gauges always as a stamped gauge — the value, the time of a
/// `mostrecent` update, and in the sequence slot ([`SEEN`]) whether a file was merged into the
/// row yet. Floating-point slots hold `f64` bits. The floating-point total of a counter,
/// histogram or summary row ([`Layout::float_total`]) holds the first value added; from the
/// second on, the row's `exact` partials hold the exact sum (so a series of one file costs
/// nothing more).
struct MergedFamily<'a> {
    name: &'a str,
    help: &'a str,
    kind: MetricKind,
    mode: GaugeMode,
    labels: Vec<&'a str>,
    bounds: Vec<f64>,
    /// The layout of a row (see above).
    layout: Layout,
    /// `layout.len()`, read once per series merged.
    width: usize,
    /// Row of each (key, process) — the process only for `all`/`liveall` gauges, else `NO_PID`.
    /// Emptied when a streamed aggregate is finished ([`Streaming::finish`]): nothing is added
    /// after that.
    rows: HashMap<(&'a [u8], u32), u32>,
    /// The (key, process) of each row, in row order.
    keys: Vec<(&'a [u8], u32)>,
    slots: Vec<u64>,
    /// The exact floating-point total of each row, once it has two addends (see above).
    exact: Vec<Partials>,
    /// The row the next series of the file being added is expected at: the one after its
    /// last. Processes of one program create most series in the same order (declarations at
    /// start-up, the same first requests), so a file's series mostly follow the rows the first
    /// file made, and a key comparison spares the hash lookup.
    next_row: usize,
    /// Native settings, from the first file that declares them.
    native_settings: Option<[u64; NATIVE_SETTINGS_LEN]>,
    /// Each row's merged native buckets (rows past the end have none).
    native: Vec<Option<NativeBuckets>>,
    /// Each row's newest exemplar per slot (rows past the end have none).
    exemplars: Vec<Option<Box<[Option<SlotData>]>>>,
}

/// The exemplars of one series of a scrape's families: `family` and `series` index
/// [`Aggregate::into_families_with_exemplars`]'s families; one slot per classic bucket (`+Inf`
/// included) of a histogram, one for a counter.
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))] // fields read by the tests; scrapes read `Series`
pub(crate) struct SeriesExemplars {
    pub(crate) family: usize,
    pub(crate) series: usize,
    pub(crate) slots: Box<[Option<SlotData>]>,
}

/// The process part of a series' identity in families that are not per process.
const NO_PID: u32 = u32::MAX;

/// A gauge row's slot that says whether a file was merged into it yet: the sequence lock's
/// place, which a row has no use for.
const SEEN: usize = gauge::SEQUENCE;

/// The aggregate of some sources.
pub(crate) struct Aggregate<'a> {
    families: Vec<MergedFamily<'a>>,
    by_name: HashMap<&'a str, usize>,
    /// `pid` label values, indexed by source position (`all`/`liveall` gauges).
    pid_labels: Vec<String>,
    /// Series skipped because their family was declared differently elsewhere.
    pub(crate) conflicts: u64,
    /// Updates the writers could not record (their files' `dropped` cells), summed.
    pub(crate) dropped: u64,
    /// Extension records skipped: malformed ones (read.rs), and native states that did not
    /// decode.
    pub(crate) bad_extensions: u64,
    /// Native states of live writers left out because every copy was taken in the middle of a
    /// reduction (`read.rs` copies such a state again first).
    pub(crate) torn_native: u64,
}

/// The `pid` label of each source's per-process rows, by position. Two containers sharing a
/// volume may both have a pid 1: such pids are told apart by the file id.
fn pid_labels(infos: impl Iterator<Item = Info> + Clone) -> Vec<String> {
    let mut pid_count: HashMap<u32, usize> = HashMap::default();
    for info in infos.clone() {
        *pid_count.entry(info.pid).or_default() += 1;
    }
    infos
        .map(|info| {
            if pid_count[&info.pid] > 1 {
                format!("{}-{:08x}", info.pid, info.id as u32)
            } else {
                info.pid.to_string()
            }
        })
        .collect()
}

/// The order a scrape aggregates its process files in: live files first (the first
/// declaration read wins a conflict), then by pid and file id.
pub(crate) fn scrape_order(live: bool, info: &Info) -> impl Ord {
    (!live, info.pid, info.id)
}

/// A scrape's aggregate built while its files are copied (`snapshot.rs`, `scrape.rs`): each
/// file added as soon as its copy is done, in the order the copies finish, then
/// [`finish`](Self::finish)ed into what [`Aggregate::scrape`] makes of the same files in
/// [`scrape_order`] with the archive last. What depends on the order is put in that order at
/// the end: the per-process rows of `all`/`liveall` gauges (keyed by a file's position) and
/// their `pid` labels. Which declaration wins when two files declare a name differently cannot
/// be: a scrape whose streamed aggregate met a conflict aggregates again in order
/// (`scrape.rs`). What is left to the order of the copies: a `mostrecent` gauge or an exemplar
/// stamped at the very same nanosecond in two files is taken from the first added (sums, the
/// gauges' included, are exact: the same in any order).
pub(crate) struct Streaming<'a> {
    agg: Aggregate<'a>,
    /// Each file added, by position: whether it is live, and its header.
    files: Vec<(bool, Info)>,
}

impl<'a> Streaming<'a> {
    /// No file yet.
    pub(crate) fn new() -> Self {
        Streaming {
            agg: Aggregate::part(&[], Purpose::Scrape, Part::ALL),
            files: Vec::new(),
        }
    }

    /// Adds a process file (one that parsed, and is not an archive).
    pub(crate) fn add(&mut self, parsed: Parsed<'a>, live: bool) {
        let index = self.files.len();
        self.files.push((live, parsed.info));
        let src = InputFile { parsed, live };
        self.agg.add(index, &src, Purpose::Scrape, Part::ALL);
    }

    /// The files added.
    pub(crate) fn len(&self) -> usize {
        self.files.len()
    }

    /// Series skipped because their family was declared differently by another file.
    pub(crate) fn conflicts(&self) -> u64 {
        self.agg.conflicts
    }

    /// Adds the archive (last) and puts the per-process rows in [`scrape_order`].
    pub(crate) fn finish(self, archive: Option<Parsed<'a>>) -> Aggregate<'a> {
        let Streaming { mut agg, files } = self;
        let n = files.len();
        let mut order: Vec<usize> = (0..n).collect();
        crate::sort::sort_by(&mut order, |&a, &b| {
            let (x, y) = (&files[a], &files[b]);
            scrape_order(x.0, &x.1).cmp(&scrape_order(y.0, &y.1))
        });
        let mut position = vec![0u32; n];
        for (p, &i) in order.iter().enumerate() {
            position[i] = p as u32;
        }
        let mut infos: Vec<Info> = order.iter().map(|&i| files[i].1).collect();
        if let Some(parsed) = archive {
            infos.push(parsed.info);
            let src = InputFile {
                parsed,
                live: false,
            };
            agg.add(n, &src, Purpose::Scrape, Part::ALL);
        }
        for fam in &mut agg.families {
            if fam.keys.iter().all(|&(_, pid)| pid == NO_PID) {
                continue;
            }
            for (_, pid) in &mut fam.keys {
                if let Some(&p) = position.get(*pid as usize) {
                    *pid = p;
                }
            }
            // Keyed by the positions replaced above; nothing is added after this.
            fam.rows.clear();
        }
        agg.pid_labels = pid_labels(infos.into_iter());
        agg
    }
}

/// A `mostrecent` gauge's value and timestamp. Its cells were read as one block that two
/// consecutive reads agreed on (read.rs), so the value comes with its own timestamp; a sequence
/// left odd by a writer killed in the middle of an update is taken as it is.
fn read_stamped(s: &SeriesRecord<'_>) -> (f64, u64) {
    (f64::from_bits(s.cell(gauge::VALUE)), s.cell(gauge::TIME))
}

/// A share of the series: those whose key hashes to `index` modulo `of` (see
/// [`Aggregate::scrape`]).
#[derive(Clone, Copy)]
struct Part {
    index: usize,
    of: usize,
}

impl Part {
    const ALL: Part = Part { index: 0, of: 1 };

    /// Whether the series of `key` is this share's. The hash is fixed, not seeded: every share
    /// must agree on it. Keys crafted to land in one share only cost the parallelism.
    fn has(self, key: &[u8]) -> bool {
        use std::hash::BuildHasher;
        self.of == 1
            || foldhash::fast::FixedState::with_seed(0).hash_one(key) as usize % self.of
                == self.index
    }
}

/// Series records per share below which a scrape aggregates on its own thread alone.
const SERIES_PER_PART: usize = 64 * 1024;
/// Shares at most (threads, the scrape's own included). One: the shared merge is off. On the 2
/// cores it was measured on, every share walks every file's records to pick its own, and the
/// shares' allocations doubled the kernel's time: a scrape of 256 Python-shaped files took
/// 50–64 ms with two shares against 42–50 ms with one (BENCHMARKS.md, *Multiprocess mode*), and
/// the native scrape it was written for gained no wall time. The test below keeps the shares
/// exact, for a machine with more cores to measure it again.
const MAX_PARTS: usize = 1;

impl<'a> Aggregate<'a> {
    /// Aggregates `sources` (read in order: put live files first, the archive last).
    pub(crate) fn new(sources: &[InputFile<'a>], purpose: Purpose) -> Self {
        Self::part(sources, purpose, Part::ALL)
    }

    /// [`new`](Self::new) for a scrape, the series shared out by key between up to
    /// [`MAX_PARTS`] threads (as the machine has cores, one per [`SERIES_PER_PART`] series
    /// records), each aggregating every file's series of its share; the shares' rows are then
    /// put together. Every share declares the same families in the same order (declarations do
    /// not depend on series), each series is in exactly one share, and per-file counts are
    /// taken by the first share alone, so the result is the one [`new`](Self::new) gives (a
    /// test compares them). A helper that cannot be started, or that panicked, has its share
    /// aggregated on this thread.
    pub(crate) fn scrape(sources: &[InputFile<'a>]) -> Self {
        let records: usize = sources.iter().map(|s| s.parsed.series_count()).sum();
        let parts = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .min(MAX_PARTS)
            .min(records / SERIES_PER_PART)
            .max(1);
        Self::in_parts(sources, parts)
    }

    /// [`scrape`](Self::scrape) in `parts` shares.
    fn in_parts(sources: &[InputFile<'a>], parts: usize) -> Self {
        let purpose = Purpose::Scrape;
        if parts <= 1 {
            return Self::new(sources, purpose);
        }
        let part = |index| Part { index, of: parts };
        let shares: Vec<Mutex<Option<Self>>> = (0..parts).map(|_| Mutex::new(None)).collect();
        threads::run(parts, &|i| {
            let share = Self::part(sources, purpose, part(i));
            *shares[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(share);
        });
        let share = |i: usize| {
            let done = shares[i]
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            done.unwrap_or_else(|| Self::part(sources, purpose, part(i)))
        };
        let mut agg = share(0);
        for i in 1..parts {
            agg.absorb(share(i));
        }
        agg
    }

    /// Puts the rows of `other`, another share of the same sources, after this one's.
    fn absorb(&mut self, other: Aggregate<'a>) {
        self.conflicts += other.conflicts;
        self.dropped = self.dropped.saturating_add(other.dropped);
        self.bad_extensions = self.bad_extensions.saturating_add(other.bad_extensions);
        self.torn_native += other.torn_native;
        for (f, g) in self.families.iter_mut().zip(other.families) {
            debug_assert_eq!(f.name, g.name, "shares declare the same families");
            let base = f.keys.len();
            f.native.resize(base, None);
            f.native.extend(g.native);
            f.exemplars.resize(base, None);
            f.exemplars.extend(g.exemplars);
            f.rows
                .extend(g.rows.into_iter().map(|(k, row)| (k, row + base as u32)));
            f.keys.extend(g.keys);
            f.slots.extend(g.slots);
            f.exact.extend(g.exact);
        }
    }

    /// Aggregates the series of `part` of `sources`.
    fn part(sources: &[InputFile<'a>], purpose: Purpose, part: Part) -> Self {
        let mut agg = Aggregate {
            families: Vec::new(),
            by_name: HashMap::default(),
            pid_labels: Vec::new(),
            conflicts: 0,
            dropped: 0,
            bad_extensions: 0,
            torn_native: 0,
        };
        agg.pid_labels = pid_labels(sources.iter().map(|s| s.parsed.info));
        for (i, s) in sources.iter().enumerate() {
            agg.add(i, s, purpose, part);
        }
        agg
    }

    /// Finds or creates the accumulator for a file's family; `None` on a conflict.
    fn resolve(&mut self, f: &super::read::Fam<'a>) -> Option<usize> {
        let per_process = f.kind() == MetricKind::Gauge
            && matches!(f.mode(), GaugeMode::All | GaugeMode::LiveAll);
        if per_process && f.label_names().any(|n| n == "pid") {
            return None; // the `pid` label we add would be duplicated
        }
        if let Some(&i) = self.by_name.get(f.name()) {
            let acc = &self.families[i];
            let same = acc.kind == f.kind()
                && acc.labels.iter().copied().eq(f.label_names())
                && acc.bounds.iter().copied().eq(f.bounds())
                && (f.kind() != MetricKind::Gauge || acc.mode == f.mode());
            return same.then_some(i);
        }
        let layout = Layout::of(f.kind(), true, f.n_bounds());
        let width = layout.len();
        // Sized for this file's series: most files of a directory hold the same ones.
        let mut rows = HashMap::default();
        rows.reserve(f.n_series() as usize);
        self.families.push(MergedFamily {
            name: f.name(),
            help: f.help(),
            kind: f.kind(),
            mode: f.mode(),
            labels: f.label_names().collect(),
            bounds: f.bounds().collect(),
            layout,
            width,
            rows,
            keys: Vec::with_capacity(f.n_series() as usize),
            slots: Vec::with_capacity(f.n_series() as usize * width),
            exact: Vec::with_capacity(f.n_series() as usize),
            next_row: 0,
            native_settings: None,
            native: Vec::new(),
            exemplars: Vec::new(),
        });
        self.by_name.insert(f.name(), self.families.len() - 1);
        Some(self.families.len() - 1)
    }

    fn add(&mut self, index: usize, src: &InputFile<'a>, purpose: Purpose, part: Part) {
        let p = &src.parsed;
        if part.index == 0 {
            // Per file: counted by one share.
            self.dropped = self.dropped.saturating_add(p.info.dropped);
            self.bad_extensions = self.bad_extensions.saturating_add(p.bad_extensions);
        }
        for fam in &mut self.families {
            fam.next_row = 0;
        }
        // A process may declare one name more than once: the builder methods (`buckets`,
        // `mode`, ...) make a new declaration, and one without labels creates its series at
        // once. The last declaration of a name in a file is the one in use; earlier ones are
        // ignored.
        let mut last: HashMap<&str, usize> = HashMap::default();
        for (i, f) in p.families.iter().enumerate() {
            last.insert(f.name(), i);
        }
        let superseded: Vec<bool> = (0..p.families.len())
            .map(|i| last.get(p.families[i].name()) != Some(&i))
            .collect();
        let resolved: Vec<Option<usize>> = p
            .families
            .iter()
            .enumerate()
            .map(|(i, f)| {
                if superseded[i] {
                    return None;
                }
                let per_process = f.kind() == MetricKind::Gauge
                    && matches!(f.mode(), GaugeMode::All | GaugeMode::LiveAll);
                if purpose == Purpose::Archive
                    && f.kind() == MetricKind::Gauge
                    && (per_process || f.mode().is_live())
                {
                    return None; // not archived: dropped with the dead process (documented)
                }
                let fi = self.resolve(f)?;
                if self.families[fi].native_settings.is_none() {
                    self.families[fi].native_settings = p.native_settings(i);
                }
                Some(fi)
            })
            .collect();
        for s in p.series() {
            if !part.has(s.key) {
                continue;
            }
            let Some(fi) = resolved[s.fam] else {
                let f = &p.families[s.fam];
                let archived_away = purpose == Purpose::Archive && f.kind() == MetricKind::Gauge;
                if !archived_away && !superseded[s.fam] {
                    self.conflicts += 1;
                }
                continue;
            };
            let fam = &mut self.families[fi];
            let mut pid = NO_PID;
            if fam.kind == MetricKind::Gauge {
                if fam.mode.is_live() && !src.live {
                    continue;
                }
                if matches!(fam.mode, GaugeMode::All | GaugeMode::LiveAll) {
                    pid = index as u32;
                }
            }
            let row = match fam.keys.get(fam.next_row) {
                Some(&(key, p)) if p == pid && key == s.key => fam.next_row as u32,
                _ => {
                    let next = fam.keys.len() as u32;
                    let row = *fam.rows.entry((s.key, pid)).or_insert(next);
                    if row == next {
                        fam.keys.push((s.key, pid));
                        fam.slots.resize(fam.slots.len() + fam.width, 0);
                        fam.exact.push(Partials::default());
                    }
                    row
                }
            };
            fam.next_row = row as usize + 1;
            let at = row as usize * fam.width;
            let exact = &mut fam.exact[row as usize];
            merge(
                fam.kind,
                fam.mode,
                &mut fam.slots[at..at + fam.width],
                exact,
                &s,
            );
            if let Some((ext, cells)) = s.native {
                let state = match (ext, fam.native.get_mut(row as usize)) {
                    // Added where it lies, without building its buckets first.
                    (EXT_NATIVE_SPARSE, Some(Some(acc))) => {
                        if !native_merge::merge_sparse_bytes(acc, cells) {
                            self.bad_extensions += 1;
                        }
                        native_merge::State::Fresh // nothing more to merge
                    }
                    (EXT_NATIVE_SPARSE, _) => native_merge::decode_sparse_bytes(cells)
                        .map_or(native_merge::State::Invalid, native_merge::State::Buckets),
                    (ext, _) => match file::native_form(ext) {
                        Some(form) => native_merge::decode_state(cells, form, src.live),
                        None => native_merge::State::Invalid,
                    },
                };
                match state {
                    native_merge::State::Buckets(b) => {
                        let row = row as usize;
                        if fam.native.len() <= row {
                            fam.native.resize(row + 1, None);
                        }
                        match &mut fam.native[row] {
                            Some(acc) => native_merge::merge_owned(acc, b),
                            none => *none = Some(b),
                        }
                    }
                    native_merge::State::Fresh => {}
                    native_merge::State::Torn => self.torn_native += 1,
                    native_merge::State::Invalid => self.bad_extensions += 1,
                }
            }
            if !s.exemplars.is_empty() && src.live && purpose == Purpose::Scrape {
                let row = row as usize;
                if fam.exemplars.len() <= row {
                    fam.exemplars.resize(row + 1, None);
                }
                let cells: Vec<u64> = words(s.exemplars).collect();
                let n = cells.len() / SLOT_WORDS;
                let kept = fam.exemplars[row].get_or_insert_with(|| vec![None; n].into());
                for (k, slot) in kept.iter_mut().zip(cells.chunks_exact(SLOT_WORDS)) {
                    // A trace id of 0: labels kept in the writing process, not in the file.
                    if let Some(e) = SlotData::decode(slot).filter(|e| e.trace != 0) {
                        if k.is_none_or(|k| e.time_ns > k.time_ns) {
                            *k = Some(e);
                        }
                    }
                }
            }
        }
    }

    /// The families, for a scrape (sorted by name; series by label values), each series with
    /// its newest live exemplar per slot in [`Series::exemplars`].
    pub(crate) fn into_families(self) -> Vec<MetricFamily> {
        self.into_families_with_exemplars().0
    }

    /// The families, for a scrape (sorted by name; series by label values; exemplars in
    /// [`Series::exemplars`]), and the exemplars of their series as the slots held them.
    pub(crate) fn into_families_with_exemplars(
        mut self,
    ) -> (Vec<MetricFamily>, Vec<SeriesExemplars>) {
        let pid_labels = self.pid_labels;
        crate::sort::sort_by(&mut self.families, |a, b| a.name.cmp(b.name));
        let mut exemplars = Vec::new();
        let out: Vec<MetricFamily> = self
            .families
            .into_iter()
            .enumerate()
            .map(|(fi, mut f)| {
                let label_names: Vec<Cow<'static, str>> =
                    f.labels.iter().map(|n| Cow::Owned(n.to_string())).collect();
                let mut family = MetricFamily::new(f.name, f.help, f.kind);
                let rows = f.sorted_rows();
                let mut shown = Vec::with_capacity(rows.len());
                for (si, &row) in rows.iter().enumerate() {
                    match f.exemplars.get_mut(row).map(Option::take) {
                        Some(Some(slots)) => {
                            shown.push(slots.iter().map(|s| s.map(|d| d.exemplar())).collect());
                            exemplars.push(SeriesExemplars {
                                family: fi,
                                series: si,
                                slots,
                            });
                        }
                        _ => shown.push(Vec::new()),
                    }
                }
                family.series = rows
                    .into_iter()
                    .zip(shown)
                    .map(|(row, exemplars)| {
                        let (key, pid) = f.keys[row];
                        let mut labels: Vec<(Cow<'static, str>, String)> = label_names
                            .iter()
                            .cloned()
                            .zip(key_values(key).map(str::to_owned))
                            .collect();
                        if pid != NO_PID {
                            labels.push((Cow::Borrowed("pid"), pid_labels[pid as usize].clone()));
                        }
                        Series {
                            labels,
                            value: f.value(row),
                            created: None,
                            exemplars,
                        }
                    })
                    .collect();
                family
            })
            .collect();
        (out, exemplars)
    }

    /// Encodes the archive: header, every family and series, the absorbed file ids.
    pub(crate) fn encode_archive(&self, id: u64, absorbed: &[u64]) -> Vec<u8> {
        let mut out = file::encode_header(id, 0, file::FLAG_ARCHIVE, 0, 0);
        let mut order: Vec<&MergedFamily<'_>> = self.families.iter().collect();
        crate::sort::sort_by(&mut order, |a, b| a.name.cmp(b.name));
        let mut cells = Vec::new();
        for f in order {
            let family_off = out.len() as u32;
            let label_names: Vec<Box<str>> = f.labels.iter().map(|&n| n.into()).collect();
            let decl = FamilyDecl {
                name: f.name,
                help: f.help,
                label_names: &label_names,
                kind: f.kind,
                mode: f.mode,
                bounds: &f.bounds,
                native: None,
            };
            file::encode_family(&mut out, &decl);
            if let Some(settings) = &f.native_settings {
                let back = (out.len() - family_off as usize) as u32;
                file::encode_extension(&mut out, EXT_NATIVE_SETTINGS, back, settings);
            }
            let layout = decl.layout();
            for row in f.sorted_rows() {
                let slots = f.row(row);
                cells.clear();
                cells.resize(layout.len(), 0);
                if let Some(total) = layout.float_total() {
                    // Counters, histograms and summaries: the slots are the file's cells, the
                    // floating-point total rounded up — never below what was absorbed, so no
                    // later scrape falls below an earlier one (exact.rs).
                    cells.copy_from_slice(slots);
                    cells[total] = f.float_total(row, Partials::round_up).to_bits();
                } else if f.kind == MetricKind::Gauge {
                    cells[gauge::VALUE] = f.gauge_value(row).to_bits();
                    if f.mode.is_stamped() {
                        // The sequence lock stays 0: no update in progress.
                        cells[gauge::TIME] = slots[gauge::TIME];
                    }
                }
                let start = out.len();
                file::encode_series(&mut out, family_off, &cells, f.keys[row].0);
                if let (Some(Some(b)), true) = (f.native.get(row), f.native_settings.is_some()) {
                    let back = (out.len() - start) as u32;
                    let sparse = native_merge::encode_sparse(b);
                    file::encode_extension(&mut out, EXT_NATIVE_SPARSE, back, &sparse);
                }
            }
        }
        file::encode_absorbed(&mut out, absorbed);
        let used = out.len() as u64;
        out[file::H_USED..file::H_USED + 8].copy_from_slice(&used.to_ne_bytes());
        out[file::H_DROPPED..file::H_DROPPED + 8].copy_from_slice(&self.dropped.to_ne_bytes());
        out
    }
}

impl MergedFamily<'_> {
    fn row(&self, row: usize) -> &[u64] {
        &self.slots[row * self.width..(row + 1) * self.width]
    }

    /// Row indices in the order of their keys (label values, then process).
    fn sorted_rows(&self) -> Vec<usize> {
        let mut rows: Vec<usize> = (0..self.keys.len()).collect();
        crate::sort::sort_by(&mut rows, |&a, &b| self.keys[a].cmp(&self.keys[b]));
        rows
    }

    /// The floating-point total of a counter, histogram or summary row
    /// ([`Layout::float_total`]), rounded by `round` if it has more than one addend.
    fn float_total(&self, row: usize, round: fn(&Partials) -> f64) -> f64 {
        self.exact_total(row, self.layout.float_total(), round)
    }

    /// A gauge row's value: a `sum`/`livesum` gauge's is exact, held like a float total.
    fn gauge_value(&self, row: usize) -> f64 {
        self.exact_total(row, Some(gauge::VALUE), Partials::round_nearest)
    }

    /// A total kept by [`add_total`]: in `slot` while it has one addend, in the row's partials
    /// (rounded by `round`) from the second on.
    fn exact_total(&self, row: usize, slot: Option<usize>, round: fn(&Partials) -> f64) -> f64 {
        let exact = &self.exact[row];
        if exact.is_empty() {
            slot.map_or(0.0, |i| f64::from_bits(self.row(row)[i]))
        } else {
            round(exact)
        }
    }

    /// A native-only histogram: written with a placeholder classic bound (file.rs).
    fn native_only(&self) -> bool {
        self.native_settings
            .is_some_and(|s| s[NATIVE_SETTINGS_LEN - 1] & file::NATIVE_ONLY != 0)
            && self.bounds == file::NATIVE_ONLY_BOUNDS
    }

    fn value(&self, row: usize) -> Value {
        let s = self.row(row);
        match self.kind {
            MetricKind::Counter => Value::Counter(
                s[counter::WHOLE] as f64 + self.float_total(row, Partials::round_nearest),
            ),
            MetricKind::Gauge => Value::Gauge(self.gauge_value(row)),
            MetricKind::Histogram if self.native_only() => {
                let native = self.native.get(row).cloned().flatten();
                // The count a native histogram shows is its buckets' (Prometheus checks that
                // they agree); the classic cells' only without native state.
                let count = native.as_ref().map_or_else(
                    || {
                        s[histogram::buckets(1)]
                            .iter()
                            .fold(0u64, |a, &c| a.saturating_add(c))
                    },
                    NativeBuckets::count,
                );
                Value::Histogram {
                    bounds: Vec::new(),
                    counts: vec![count],
                    sum: self.float_total(row, Partials::round_nearest),
                    native,
                }
            }
            MetricKind::Histogram => Value::Histogram {
                bounds: self.bounds.clone(),
                counts: s[histogram::buckets(self.bounds.len())].to_vec(),
                sum: self.float_total(row, Partials::round_nearest),
                native: self.native.get(row).cloned().flatten(),
            },
            MetricKind::Summary => Value::Summary {
                count: s[summary::COUNT],
                sum: self.float_total(row, Partials::round_nearest),
            },
            _ => Value::Info,
        }
    }
}

/// Adds `v` to a row's floating-point total: into the slot while it is the first addend (an
/// exact sum of one), into the row's partials from the second on (see [`MergedFamily`]).
fn add_total(slot: &mut u64, exact: &mut Partials, v: f64) {
    if v == 0.0 {
        return;
    }
    if exact.is_empty() {
        let first = f64::from_bits(*slot);
        if first == 0.0 {
            *slot = v.to_bits();
            return;
        }
        // The partials hold the total from now on; the slot stays 0 (read when the partials
        // are empty again: an exact total of zero).
        *slot = 0;
        exact.add(first);
    }
    exact.add(v);
}

/// Merges series `s` into its row (`width` slots and its exact total, see [`MergedFamily`]).
#[inline]
fn merge(
    kind: MetricKind,
    mode: GaugeMode,
    row: &mut [u64],
    exact: &mut Partials,
    s: &SeriesRecord<'_>,
) {
    match kind {
        // `u64` counts, then the floating-point total, last (`layout.rs`): summed.
        MetricKind::Counter | MetricKind::Summary | MetricKind::Histogram => {
            if let Some((total, counts)) = row.split_last_mut() {
                let n = counts.len();
                for (c, cell) in counts.iter_mut().zip(s.cells()) {
                    *c = c.saturating_add(cell);
                }
                add_total(total, exact, f64::from_bits(s.cell(n)));
            }
        }
        MetricKind::Gauge => {
            let (v, t) = if mode.is_stamped() {
                read_stamped(s)
            } else {
                (f64::from_bits(s.cell(gauge::VALUE)), 0)
            };
            let value = f64::from_bits(row[gauge::VALUE]);
            let first = row[SEEN] == 0;
            row[SEEN] = 1;
            let take = match mode {
                GaugeMode::All | GaugeMode::LiveAll => true,
                GaugeMode::Sum | GaugeMode::LiveSum => {
                    // Exactly, like a counter's total: the same files in any order give the
                    // same value (a scrape adds them as their copies finish, `Streaming`).
                    add_total(&mut row[gauge::VALUE], exact, v);
                    false
                }
                GaugeMode::Max | GaugeMode::LiveMax => first || v > value,
                GaugeMode::Min | GaugeMode::LiveMin => first || v < value,
                GaugeMode::MostRecent | GaugeMode::LiveMostRecent => first || t > row[gauge::TIME],
            };
            if take {
                row[gauge::VALUE] = v.to_bits();
                row[gauge::TIME] = t;
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scrape's shares put together are the aggregate one thread makes: rows, native
    /// buckets, and the counts of what was skipped.
    #[test]
    fn shares_put_together_are_the_whole() {
        use crate::multiprocess_store::read::{Parsed, Snapshot};
        let b = crate::multiprocess_store::shrink::tests::file();
        let snaps: Vec<Snapshot> = (0..3).map(|_| Snapshot::unshrunk(b.clone())).collect();
        let sources: Vec<InputFile<'_>> = snaps
            .iter()
            .enumerate()
            .map(|(i, s)| InputFile {
                parsed: Parsed::parse(s).unwrap(),
                live: i == 0,
            })
            .collect();
        let counts = |a: &Aggregate<'_>| (a.conflicts, a.dropped, a.bad_extensions, a.torn_native);
        let whole = Aggregate::new(&sources, Purpose::Scrape);
        let want_counts = counts(&whole);
        assert_eq!(want_counts, (0, 0, 6, 1));
        let want = format!("{:?}", whole.into_families());
        assert!(want.contains("NativeBuckets"), "{want}");
        // Both shares of two hold some of the 7 series (or this test would test nothing).
        for index in 0..2 {
            let share = Aggregate::part(&sources, Purpose::Scrape, Part { index, of: 2 });
            let rows: usize = share.families.iter().map(|f| f.keys.len()).sum();
            assert!((1..7).contains(&rows), "share {index}: {rows} rows");
        }
        for parts in [2, 3, 5] {
            let agg = Aggregate::in_parts(&sources, parts);
            assert_eq!(counts(&agg), want_counts, "{parts} shares");
            assert_eq!(format!("{:?}", agg.into_families()), want, "{parts} shares");
        }
    }

    fn total(values: &[f64]) -> (f64, f64) {
        let (mut slot, mut exact) = (0u64, Partials::default());
        for &v in values {
            add_total(&mut slot, &mut exact, v);
        }
        if exact.is_empty() {
            (f64::from_bits(slot), f64::from_bits(slot))
        } else {
            (exact.round_nearest(), exact.round_up())
        }
    }

    #[test]
    fn float_totals_are_exact_whatever_the_grouping() {
        let h = 2f64.powi(-53);
        assert_eq!(total(&[]), (0.0, 0.0));
        assert_eq!(total(&[0.5]), (0.5, 0.5));
        assert_eq!(total(&[1.0, h, h]).0, 1.0 + 2.0 * h);
        assert_eq!(total(&[1.0, h]), (1.0, 1.0 + 2.0 * h));
        // Cancelling to an exact zero, then going on, leaves no stale first addend behind.
        assert_eq!(total(&[1.0, -1.0]), (0.0, 0.0));
        assert_eq!(total(&[1.0, -1.0, 0.25]), (0.25, 0.25));
        assert_eq!(total(&[1.0, -1.0, 0.25, 0.5]), (0.75, 0.75));
    }
}
