//! The kernel modules a guest must load itself: an initramfs has no udev,
//! so `/init` loads them with `insmod`, dependencies first.

use std::collections::BTreeSet;

/// Modules the guest's NIC needs (virtio over PCI, then the NIC driver).
pub const NIC_MODULES: &[&str] = &["virtio_pci", "virtio_net"];

/// The module name of a `modules.dep` path: `kernel/drivers/net/virtio_net.ko`
/// → `virtio_net` (`-` and `_` are one to the kernel).
fn name_of(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

/// The `modules.dep` paths to insmod, in order, for `wanted`: each
/// module's dependencies before it, each once. Modules in `builtin` (the
/// kernel's `modules.builtin`) need nothing. A module in neither is an
/// error naming it.
pub fn load_order(dep: &str, builtin: &str, wanted: &[&str]) -> Result<Vec<String>, String> {
    let built_in: BTreeSet<String> = builtin.lines().map(name_of).collect();
    let deps: Vec<(String, Vec<String>)> = dep
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(m, d)| {
            (
                m.trim().to_string(),
                d.split_whitespace().map(str::to_string).collect(),
            )
        })
        .collect();
    let find = |name: &str| {
        deps.iter()
            .find(|(p, _)| name_of(p) == name.replace('-', "_"))
    };
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for w in wanted {
        if built_in.contains(&w.replace('-', "_")) {
            continue;
        }
        let (path, needs) =
            find(w).ok_or_else(|| format!("module {w} is neither built in nor in modules.dep"))?;
        // modules.dep lists a module's whole closure, the deepest last.
        for p in needs.iter().rev().chain([path]) {
            if seen.insert(p.clone()) {
                order.push(p.clone());
            }
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "kernel/drivers/virtio/virtio.ko:\n\
kernel/drivers/virtio/virtio_ring.ko:\n\
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n\
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n";

    #[test]
    fn dependencies_come_first_and_once() {
        let order = load_order(DEP, "", NIC_MODULES).unwrap();
        let names: Vec<String> = order.iter().map(|p| name_of(p)).collect();
        assert_eq!(
            names,
            [
                "virtio_ring",
                "virtio",
                "virtio_pci_modern_dev",
                "virtio_pci_legacy_dev",
                "virtio_pci",
                "failover",
                "net_failover",
                "virtio_net"
            ]
        );
    }

    #[test]
    fn built_in_modules_need_nothing_and_unknown_ones_are_named() {
        let builtin = "kernel/drivers/virtio/virtio_pci.ko\nkernel/drivers/net/virtio_net.ko\n";
        assert!(load_order(DEP, builtin, NIC_MODULES).unwrap().is_empty());
        let e = load_order(DEP, "", &["e1000"]).unwrap_err();
        assert!(e.contains("e1000"), "{e}");
    }
}
