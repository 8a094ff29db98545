//! (SKELETON) data_file
