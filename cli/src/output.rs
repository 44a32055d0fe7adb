//! What commands print on standard output. A reader that goes away before
//! the end (`portcullis snapshot inspect big.snap | head -3`) ends the
//! command quietly with success, as `cat` or `grep` would, instead of a
//! panic about a broken pipe.

use std::io::Write;

use crate::error::CliError;

/// Writes `args` to standard output.
pub(crate) fn write(args: std::fmt::Arguments<'_>) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args).map_err(closed_or_failed)
}

/// A write error as the command's error: the reader left, or the output
/// could not be written.
pub(crate) fn closed_or_failed(e: std::io::Error) -> CliError {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        CliError::OutputClosed
    } else {
        CliError::Io {
            action: "cannot write",
            path: "(standard output)".into(),
            source: e,
        }
    }
}

/// `println!` for commands: when standard output is gone, it returns the
/// error from the calling function (no `?` needed at the call).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::output::write(format_args!("{}\n", format_args!($($arg)*)))?
    };
}

/// `print!` for commands, likewise.
macro_rules! say_raw {
    ($($arg:tt)*) => {
        $crate::output::write(format_args!($($arg)*))?
    };
}

pub(crate) use {say, say_raw};
