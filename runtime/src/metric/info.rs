//! [`Info`]: a constant 1 that carries labels (a build version, a configuration).

use super::{Metric, check_name_suffix, private::Sealed};
use crate::cell::Cells;
use crate::model::{MetricKind, Point};

/// A series whose value is always 1 and whose labels carry the information, like
/// `prometheus_flask_exporter`'s `info()`. Its family's name must end in `_info`; the
/// OpenMetrics encoder drops the suffix from the family name, as the spec says.
///
/// ```
/// use promtrack::{Family, Info};
///
/// let build = Family::<[&str; 2], Info>::new("app_build_info", "Build information.")
///     .label_names(["version", "commit"]);
/// build.with(&["1.4.2", "9f2c1e0"]); // the series exists from now on, at 1
/// ```
pub struct Info {
    _cells: Cells,
}

impl Sealed for Info {
    type Config = ();

    fn from_cells(cells: Cells, _: &()) -> Self {
        Self { _cells: cells }
    }

    fn point<'a>(&'a self, _: &'a (), _: &'a mut Vec<u64>) -> Point<'a> {
        Point::Info
    }

    fn validate(name: &str, _: &[Box<str>], _: &()) -> Result<(), String> {
        check_name_suffix(name, MetricKind::Info, "an info metric")
    }
}

impl Metric for Info {
    const KIND: MetricKind = MetricKind::Info;
}
