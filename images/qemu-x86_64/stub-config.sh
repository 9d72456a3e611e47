# images/qemu-x86_64/stub-config.sh - the stub's configuration as a device
# of this board ships it, shared by sample-os.sh and debian-os.sh. Sourced,
# not run. Environment: SI_SERVER_URL, SI_CHANNEL, SI_ARCHIVE_MASTER,
# SI_CA_FILE (see sample-os.sh).

# si_client_ini: the [service], [system] and (with a keyring or a CA)
# [trust] sections of /etc/sysimage/client.ini on stdout; a caller adds its
# own sections after them.
si_client_ini() {
    echo "[service]"
    echo "base = ${SI_SERVER_URL:-https://updates.example.com/sysimage}"
    echo "channel = ${SI_CHANNEL:-stable}"
    echo "device = qemu-x86_64"
    echo
    echo "[system]"
    echo "cache_dir = /cache/recovery"
    echo "state_dir = /data/sysimage"
    echo "machine_id = /data/sysimage/machine-id"
    echo "boot_control = /dev/disk/by-partlabel/misc"
    if [ -n "${SI_ARCHIVE_MASTER:-}" ] || [ -n "${SI_CA_FILE:-}" ]; then
        echo
        echo "[trust]"
        [ -z "${SI_ARCHIVE_MASTER:-}" ] || echo "archive_master = /etc/sysimage/archive-master.keyring"
        [ -z "${SI_CA_FILE:-}" ] || echo "ca_file = /etc/sysimage/server-ca.pem"
    fi
}

# si_stub_files: in the tree at the current directory, the device name and
# the keyring and CA that client.ini's [trust] names.
si_stub_files() {
    echo "qemu-x86_64" > etc/sysimage/device
    [ -z "${SI_ARCHIVE_MASTER:-}" ] || install -m 0644 "$SI_ARCHIVE_MASTER" etc/sysimage/archive-master.keyring
    [ -z "${SI_CA_FILE:-}" ] || install -m 0644 "$SI_CA_FILE" etc/sysimage/server-ca.pem
}
