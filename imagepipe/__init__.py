"""imagepipe: a Glance image to a libvirt instance disk, release by release."""
