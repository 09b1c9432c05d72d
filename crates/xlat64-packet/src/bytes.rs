//! Small helpers for big-endian fields in byte slices. None of them panics:
//! out-of-range reads give zeros, out-of-range writes report a drop reason.

use crate::DropReason;

/// A big-endian 16-bit value from two bytes.
pub(crate) fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

/// `N` bytes of `b` from `at` as an array; zeros when out of range. Used
/// with offsets already checked against the packet length.
pub(crate) fn array_at<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b.get(at..)
        .and_then(|b| b.first_chunk::<N>())
        .copied()
        .unwrap_or([0; N])
}

/// The big-endian 16-bit value at `at`; 0 when out of range.
pub(crate) fn get16(b: &[u8], at: usize) -> u16 {
    be16(array_at::<2>(b, at))
}

/// The big-endian 32-bit value at `at`; 0 when out of range.
pub(crate) fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(array_at::<4>(b, at))
}

/// Writes `v` big-endian at `at`.
pub(crate) fn set16(b: &mut [u8], at: usize, v: u16) -> Result<(), DropReason> {
    let f = b
        .get_mut(at..)
        .and_then(|b| b.first_chunk_mut::<2>())
        .ok_or(DropReason::OutputTooSmall)?;
    *f = v.to_be_bytes();
    Ok(())
}

/// Writes `v` big-endian at `at`.
pub(crate) fn set32(b: &mut [u8], at: usize, v: u32) -> Result<(), DropReason> {
    let f = b
        .get_mut(at..)
        .and_then(|b| b.first_chunk_mut::<4>())
        .ok_or(DropReason::OutputTooSmall)?;
    *f = v.to_be_bytes();
    Ok(())
}

/// Writes byte `v` at `at`.
pub(crate) fn set8(b: &mut [u8], at: usize, v: u8) -> Result<(), DropReason> {
    *b.get_mut(at).ok_or(DropReason::OutputTooSmall)? = v;
    Ok(())
}
