//! The Linux dataplane: rtnetlink and nfnetlink spoken directly.
