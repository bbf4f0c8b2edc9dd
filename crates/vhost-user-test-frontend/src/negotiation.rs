//! The feature negotiation of a vhost-user handshake, shared by both frontends of this crate
//! ([`crate::TestFrontend`], the correct one, and [`crate::raw::RawFrontend`], the one
//! whose steps a hostile test can change), so that they cannot disagree on the rules.

use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use virtio_bindings::virtio_config::{
    VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_NOTIFICATION_DATA, VIRTIO_F_RING_PACKED,
};
use virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;

/// `VIRTIO_RING_F_EVENT_IDX` as a feature mask.
pub const FEATURE_EVENT_IDX: u64 = 1 << VIRTIO_RING_F_EVENT_IDX;
/// `VHOST_USER_F_PROTOCOL_FEATURES` (bit 30) as a feature mask.
pub const FEATURE_PROTOCOL_FEATURES: u64 = VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
/// Offered features this frontend never acks because it does not implement
/// them: packed rings, an IOMMU, notification data and dirty logging
/// (`VHOST_F_LOG_ALL`, bit 26).
pub const UNSUPPORTED_FEATURES: u64 = (1 << VIRTIO_F_RING_PACKED)
    | (1 << VIRTIO_F_ACCESS_PLATFORM)
    | (1 << VIRTIO_F_NOTIFICATION_DATA)
    | (1 << 26);

/// The protocol features a frontend of this crate acks when offered: MQ (GET_QUEUE_NUM),
/// REPLY_ACK (every request acknowledged, so a failure surfaces at its call) and CONFIG.
pub const WANTED_PROTOCOL_FEATURES: VhostUserProtocolFeatures = VhostUserProtocolFeatures::MQ
    .union(VhostUserProtocolFeatures::REPLY_ACK)
    .union(VhostUserProtocolFeatures::CONFIG);

/// The virtio features to ack (SET_FEATURES) of those `offered`: within `mask`, never
/// [`UNSUPPORTED_FEATURES`], EVENT_IDX only if `event_idx`, PROTOCOL_FEATURES only if
/// `protocol_features`.
pub fn acked_features(offered: u64, mask: u64, event_idx: bool, protocol_features: bool) -> u64 {
    let mut acked = offered & mask & !UNSUPPORTED_FEATURES;
    if !event_idx {
        acked &= !FEATURE_EVENT_IDX;
    }
    if !protocol_features {
        acked &= !FEATURE_PROTOCOL_FEATURES;
    }
    acked
}

/// Whether the rings start disabled and must be enabled with SET_VRING_ENABLE(1). The spec's
/// rule: "If VHOST_USER_F_PROTOCOL_FEATURES has not been negotiated, the ring starts
/// directly in the enabled state. If it has been negotiated, the ring is initialized in a
/// disabled state". It depends on that virtio feature bit alone, not on which protocol
/// features were then acked (a backend may offer the bit and no protocol feature).
pub fn rings_start_disabled(acked_features: u64) -> bool {
    acked_features & FEATURE_PROTOCOL_FEATURES != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_and_unwanted_features_are_never_acked() {
        let all = u64::MAX;
        let acked = acked_features(all, all, true, true);
        assert_eq!(acked & UNSUPPORTED_FEATURES, 0);
        assert_ne!(acked & FEATURE_EVENT_IDX, 0);
        assert_ne!(acked & FEATURE_PROTOCOL_FEATURES, 0);
        let acked = acked_features(all, all, false, false);
        assert_eq!(acked & (FEATURE_EVENT_IDX | FEATURE_PROTOCOL_FEATURES), 0);
        assert_eq!(acked_features(all, 1 << 32, true, true), 1 << 32);
        assert_eq!(acked_features(1, all, true, true), 1);
    }

    #[test]
    fn the_protocol_features_bit_alone_decides_ring_enabling() {
        assert!(rings_start_disabled(FEATURE_PROTOCOL_FEATURES));
        assert!(!rings_start_disabled(!FEATURE_PROTOCOL_FEATURES));
    }
}
