# Sourced by the release scripts: what they share.
# fetch_to_raw: images.fetch_to_raw under [X $hex] (nova-reference.md 2.2):
# download to $base.part, convert to raw unless it is raw, rename to $base.
# Uses $url, $base, $I and $hex.
fetch_to_raw() {
    (
        flock 9
        if [ ! -e "$base" ]; then
            curl -sSf -o "$base.part" "$url"
            fmt=$(qemu-img info "$base.part" | sed -n 's/^file format: //p')
            if [ "$fmt" = raw ]; then
                mv "$base.part" "$base"
            else
                qemu-img convert -O raw "$base.part" "$base.converted"
                rm -f "$base.part"
                qemu-img info "$base.converted" >/dev/null
                mv "$base.converted" "$base"
            fi
        fi
    ) 9>"$I/locks/nova-$hex"
}
