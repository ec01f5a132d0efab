# Sourced by the release scripts with their arguments: what they share.
# IMAGE_URL INSTANCES_PATH INSTANCE ROOT_GB [sync] become $url $I $inst $gb
# $flush; $B is the image cache, $base the cached image of $url.
export LC_ALL=C LANG=C
url=$1 I=$2 inst=$3 gb=$4 flush=${5:-}
B=$I/_base
hex=$(printf %s "$url" | sha1sum | cut -c1-40)
base=$B/$hex

# fetch_to_raw: images.fetch_to_raw under [X $hex] (nova-reference.md 2.2):
# download to $base.part, convert to raw unless it is raw, rename to $base.
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
