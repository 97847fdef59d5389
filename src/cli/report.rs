//! `leasebox report TIMING.json [-o FILE]`: read a run's timing file and write its timeline
//! picture (the [`report`](crate::report) layer draws it).

use super::Context;
use super::args::ReportArgs;
use crate::error::Failure;

pub(crate) fn report(_args: &ReportArgs, _cx: &Context) -> Result<(), Failure> {
    todo!()
}
