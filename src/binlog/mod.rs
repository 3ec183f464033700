//! The binlog streamer and row-event decoding (being built; see issue 4).
