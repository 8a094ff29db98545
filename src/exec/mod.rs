//! What one run needs, whichever engine runs it: the memory regions and the bounds model
//! both engines share, the helper table, the maps whose values programs may reach, the
//! re-entrancy guard and the idioms both engines run in bulk. Engines import this layer;
//! nothing here knows which engine is running (ARCHITECTURE.md, "Layers").

#[cfg(feature = "std")]
pub mod current_run;
pub mod helpers;
pub(crate) mod idiom;
/// What the loop and switch recognisers find in a program, for the corpus test's report.
#[doc(hidden)]
pub use idiom::{Census, census};
pub mod machine;
#[cfg(feature = "std")]
pub mod maps;
pub mod memory;
pub mod packet;
#[cfg(feature = "std")]
pub(crate) mod reentry;
#[cfg(not(feature = "std"))]
#[path = "reentry_nostd.rs"]
pub(crate) mod reentry;
pub(crate) mod switch;
