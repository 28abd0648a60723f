# Sourced by the scripts that run the app under xvfb-run: waits until the X server takes a
# client. xvfb-run starts the script once Xvfb says it is up, but on a loaded machine the app's
# first connection has been seen to fail right after (the smoke test, once in a fresh-clone
# run); the test helper in tests/resume.rs waits the same way.
x_ready() {
    local i
    for i in $(seq 1 150); do
        xdotool getdisplaygeometry >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "the X server on DISPLAY=$DISPLAY takes no client after 30 s" >&2
    return 1
}
