use super::*;

fn def(map_type: MapType, key_size: u32, value_size: u32, max_entries: u32) -> MapDef {
    MapDef {
        map_type: map_type as u32,
        key_size,
        value_size,
        max_entries,
        map_flags: 0,
        map_extra: 0,
    }
}

fn k(i: u32) -> [u8; 4] {
    i.to_ne_bytes()
}

fn err(e: Result<(), MapError>) -> i32 {
    e.err().map_or(0, |e| -e.errno())
}

#[test]
fn array_semantics() {
    let m = Map::new("a", def(MapType::Array, 4, 12, 3)).unwrap();
    let mut v = [0xffu8; 12];
    assert_eq!(m.lookup(&k(2), &mut v), Ok(()));
    assert_eq!(v, [0; 12], "arrays start zeroed");
    assert_eq!(m.lookup(&k(3), &mut v), Err(MapError::NotFound));
    assert_eq!(m.update(&k(1), &[7; 12], BPF_ANY), Ok(()));
    assert_eq!(m.update(&k(1), &[8; 12], BPF_EXIST), Ok(()));
    assert_eq!(err(m.update(&k(1), &[9; 12], BPF_NOEXIST)), -libc::EEXIST);
    assert_eq!(err(m.update(&k(3), &[9; 12], BPF_ANY)), -libc::E2BIG);
    assert_eq!(err(m.update(&k(1), &[9; 12], 3)), -libc::EINVAL);
    assert_eq!(err(m.delete(&k(1))), -libc::EINVAL);
    m.lookup(&k(1), &mut v).unwrap();
    assert_eq!(v, [8; 12]);
    let mut next = [0u8; 4];
    assert_eq!(m.next_key(None, &mut next), Ok(()));
    assert_eq!(next, k(0));
    assert_eq!(m.next_key(Some(&k(1)), &mut next), Ok(()));
    assert_eq!(next, k(2));
    assert_eq!(m.next_key(Some(&k(2)), &mut next), Err(MapError::NotFound));
    assert_eq!(m.next_key(Some(&k(99)), &mut next), Ok(()));
    assert_eq!(next, k(0));
}

#[test]
fn value_pointers_are_exact() {
    let m = Map::new("a", def(MapType::Array, 4, 12, 3)).unwrap();
    let set = MapSet::new(vec![Arc::new(m)]);
    let m = set.by_name("a").unwrap();
    let p = m.lookup_ptr(&k(1)).unwrap() as u64;
    assert!(set.allows(p, p + 12));
    assert!(set.allows(p + 11, p + 12));
    assert!(!set.allows(p, p + 13), "one byte past the value");
    assert!(!set.allows(p + 12, p + 13), "padding between slots");
    assert!(!set.allows(p - 1, p + 1));
    let last = m.lookup_ptr(&k(2)).unwrap() as u64;
    assert!(set.allows(last, last + 12));
    assert!(!set.allows(last + 12, last + 16));
    assert!(m.lookup_ptr(&k(3)).is_none());
    assert_eq!(set.by_handle(m.handle()).map(Map::name), Some("a"));
    assert!(set.by_handle(m.handle() + 8).is_none());
}

#[test]
fn hash_flags_full_and_delete() {
    let m = Map::new("h", def(MapType::Hash, 4, 8, 2)).unwrap();
    let mut v = [0u8; 8];
    assert_eq!(m.lookup(&k(5), &mut v), Err(MapError::NotFound));
    assert_eq!(err(m.update(&k(5), &[1; 8], BPF_EXIST)), -libc::ENOENT);
    assert_eq!(m.update(&k(5), &[1; 8], BPF_NOEXIST), Ok(()));
    assert_eq!(err(m.update(&k(5), &[2; 8], BPF_NOEXIST)), -libc::EEXIST);
    assert_eq!(m.update(&k(6), &[3; 8], BPF_ANY), Ok(()));
    assert_eq!(err(m.update(&k(7), &[4; 8], BPF_ANY)), -libc::E2BIG);
    assert_eq!(
        m.update(&k(6), &[5; 8], BPF_ANY),
        Ok(()),
        "full map still updates"
    );
    m.lookup(&k(6), &mut v).unwrap();
    assert_eq!(v, [5; 8]);
    assert_eq!(m.delete(&k(5)), Ok(()));
    assert_eq!(err(m.delete(&k(5))), -libc::ENOENT);
    assert_eq!(m.update(&k(7), &[4; 8], BPF_ANY), Ok(()));
    assert_eq!(err(m.update(&k(7), &[4; 8], 4)), -libc::EINVAL);
    assert_eq!(
        err(m.update(&[0; 3], &[4; 8], 0)),
        -libc::EINVAL,
        "wrong key size"
    );
}

#[test]
fn hash_iteration_visits_every_key_once() {
    let m = Map::new("h", def(MapType::Hash, 8, 4, 100)).unwrap();
    for i in 0..100u64 {
        m.update(&i.to_ne_bytes(), &[1; 4], BPF_ANY).unwrap();
    }
    let mut seen = Vec::new();
    let mut key: Option<[u8; 8]> = None;
    let mut next = [0u8; 8];
    while m.next_key(key.as_ref().map(|k| &k[..]), &mut next).is_ok() {
        seen.push(u64::from_ne_bytes(next));
        key = Some(next);
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..100).collect::<Vec<_>>());
}

#[test]
fn lru_evicts_the_least_recently_used() {
    let m = Map::new("l", def(MapType::LruHash, 4, 4, 3)).unwrap();
    for i in 0..3 {
        m.update(&k(i), &k(i), BPF_ANY).unwrap();
    }
    assert!(m.lookup_ptr(&k(0)).is_some()); // 0 is now the most recent
    m.update(&k(3), &k(3), BPF_ANY).unwrap();
    let mut v = [0u8; 4];
    assert_eq!(
        m.lookup(&k(1), &mut v),
        Err(MapError::NotFound),
        "1 was oldest"
    );
    for i in [0, 2, 3] {
        assert_eq!(m.lookup(&k(i), &mut v), Ok(()));
        assert_eq!(v, k(i));
    }
}

#[test]
fn per_cpu_values() {
    let cpus = possible_cpus();
    let m = Map::new("p", def(MapType::PercpuArray, 4, 4, 2)).unwrap();
    assert_eq!(m.host_value_size(), 8 * cpus);
    let mine = current_cpu();
    let p = m.lookup_ptr(&k(1)).unwrap();
    // SAFETY: the pointer is the 4-byte value of this thread's slot.
    unsafe { p.cast::<u32>().write_unaligned(42) };
    let mut all = vec![0u8; 8 * cpus];
    m.lookup(&k(1), &mut all).unwrap();
    for cpu in 0..cpus {
        let v = u32::from_ne_bytes(all[8 * cpu..8 * cpu + 4].try_into().unwrap());
        assert_eq!(v, if cpu == mine { 42 } else { 0 });
    }
    let h = Map::new("ph", def(MapType::PercpuHash, 4, 4, 2)).unwrap();
    let values: Vec<u8> = (0..cpus as u32)
        .flat_map(|c| [c, 0])
        .flat_map(u32::to_ne_bytes)
        .collect();
    h.update(&k(9), &values, BPF_ANY).unwrap();
    let p = h.lookup_ptr(&k(9)).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { p.cast::<u32>().read_unaligned() }, mine as u32);
    h.update_from_program(&k(10), &k(77), BPF_ANY).unwrap();
    h.lookup(&k(10), &mut all).unwrap();
    let v = u32::from_ne_bytes(all[8 * mine..8 * mine + 4].try_into().unwrap());
    assert_eq!(v, 77);
}

#[test]
fn ringbuf_reserve_submit_discard_consume() {
    let m = Map::new("r", def(MapType::Ringbuf, 0, 0, 4096)).unwrap();
    let rb = m.ringbuf().unwrap();
    let a = rb.reserve(5).unwrap();
    assert!(m.contains(a, a + 5));
    assert!(!m.contains(a, a + 6), "one byte past the reservation");
    assert!(!m.contains(a - 8, a), "the header is not the program's");
    let b = rb.reserve(3).unwrap();
    // SAFETY: a live reservation of 5 bytes.
    unsafe { std::ptr::copy_nonoverlapping(b"hello".as_ptr(), a as *mut u8, 5) };
    // SAFETY: a live reservation of 3 bytes.
    unsafe { std::ptr::copy_nonoverlapping(b"bye".as_ptr(), b as *mut u8, 3) };
    rb.commit(b, false).unwrap();
    let mut got: Vec<Vec<u8>> = Vec::new();
    assert_eq!(
        rb.consume(|d| {
            got.push(d.to_vec());
            0
        }),
        Ok(0),
        "the first record is still reserved"
    );
    rb.commit(a, false).unwrap();
    assert!(!m.contains(a, a + 1), "submitted: no longer accessible");
    assert_eq!(rb.commit(a, false), Err(MapError::Invalid));
    let c = rb.reserve(4).unwrap();
    rb.commit(c, true).unwrap();
    rb.output(b"out").unwrap();
    assert_eq!(
        rb.consume(|d| {
            got.push(d.to_vec());
            0
        }),
        Ok(3)
    );
    assert_eq!(got, [b"hello".to_vec(), b"bye".to_vec(), b"out".to_vec()]);
    assert_eq!(rb.pending(), 0);
    assert!(rb.reserve(0).is_none());
    assert!(rb.reserve(4096).is_none());
    // Fill and wrap around many times: records stay contiguous and in order.
    for round in 0u32..200 {
        let at = rb.reserve(1000).unwrap();
        // SAFETY: a live 1000-byte reservation.
        unsafe { std::ptr::write_bytes(at as *mut u8, round as u8, 1000) };
        rb.commit(at, false).unwrap();
        let mut n = 0;
        rb.consume(|d| {
            assert_eq!(d.len(), 1000);
            assert!(d.iter().all(|&x| x == round as u8));
            n += 1;
            0
        })
        .unwrap();
        assert_eq!(n, 1);
    }
    // No room: reservations fail instead of overwriting unconsumed records.
    while rb.output(&[1; 100]).is_ok() {}
    assert!(rb.reserve(100).is_none());
}

#[test]
fn bad_definitions_are_refused() {
    let bad = |d: MapDef| Map::new("x", d).unwrap_err().to_string();
    assert_eq!(
        bad(MapDef {
            map_type: 99,
            ..def(MapType::Hash, 4, 4, 1)
        }),
        "unsupported map type 99"
    );
    assert!(bad(def(MapType::Array, 8, 4, 1)).contains("key_size"));
    assert!(bad(def(MapType::Hash, 4, 0, 1)).contains("value_size"));
    assert!(bad(def(MapType::Hash, 4, 4, 0)).contains("max_entries"));
    assert!(bad(def(MapType::Ringbuf, 0, 0, 1000)).contains("power of 2"));
    assert!(bad(def(MapType::Hash, 4, 1 << 20, 1 << 20)).contains("limit"));
}

#[test]
fn concurrent_updates_keep_the_table_consistent() {
    let m = Arc::new(Map::new("h", def(MapType::Hash, 4, 8, 64)).unwrap());
    std::thread::scope(|s| {
        for t in 0..8u32 {
            let m = &m;
            s.spawn(move || {
                for i in 0..2000u32 {
                    let key = k((i * 7 + t) % 96);
                    let _ = m.update(&key, &u64::from(i).to_ne_bytes(), BPF_ANY);
                    if i % 3 == 0 {
                        let _ = m.delete(&key);
                    }
                    let _ = m.lookup_ptr(&key);
                }
            });
        }
        let mut next = [0u8; 4];
        for _ in 0..200 {
            let mut key: Option<[u8; 4]> = None;
            let mut n = 0;
            while m.next_key(key.as_ref().map(|k| &k[..]), &mut next).is_ok() && n < 1000 {
                key = Some(next);
                n += 1;
            }
        }
    });
    let MapStorage::Hash(h) = m.storage() else {
        panic!()
    };
    let mut count = 0;
    let mut key: Option<[u8; 4]> = None;
    let mut next = [0u8; 4];
    while m.next_key(key.as_ref().map(|k| &k[..]), &mut next).is_ok() {
        key = Some(next);
        count += 1;
    }
    assert_eq!(count, h.len(), "iteration sees exactly the live elements");
}

#[test]
fn typed_api() {
    let m = Map::new("h", def(MapType::Hash, 4, 16, 8)).unwrap();
    m.set(&7u32, &[1u64, 2], BPF_ANY).unwrap();
    assert_eq!(m.get::<u32, [u64; 2]>(&7), Ok([1, 2]));
    assert_eq!(
        m.get::<u32, u64>(&7),
        Err(MapError::Invalid),
        "wrong value type"
    );
    assert_eq!(m.get::<u32, [u64; 2]>(&8), Err(MapError::NotFound));
    assert_eq!(
        m.set(&7u64, &[1u64, 2], BPF_ANY),
        Err(MapError::Invalid),
        "wrong key type"
    );
    m.set(&9u32, &[3u64, 4], BPF_NOEXIST).unwrap();
    let mut keys = m.keys::<u32>().unwrap();
    keys.sort_unstable();
    assert_eq!(keys, [7, 9]);
    m.remove(&7u32).unwrap();
    assert_eq!(m.keys::<u32>().unwrap(), [9]);
    let p = Map::new("p", def(MapType::PercpuArray, 4, 4, 1)).unwrap();
    let per_cpu: Vec<u32> = p.get_per_cpu(&0u32).unwrap();
    assert_eq!(per_cpu, vec![0; possible_cpus()]);
    assert_eq!(m.get_per_cpu::<u32, u32>(&9), Err(MapError::Invalid));
}
