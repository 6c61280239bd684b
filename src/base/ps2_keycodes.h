// PyREBox's KEYSTROKE numbering, from the bytes a guest reads from the PS/2
// data port (0x60).
//
// PyREBox reported the scancode the keyboard produced in its current
// scancode set, before the i8042 controller translated it: with the PC's
// default set-up (keyboard in set 2, controller translating to set 1, which
// is what guests read) a press of 'a' is 0x1c and its release is 0xf0 then
// 0x1c; extended keys are preceded by 0xe0 (0xe1 for Pause). The guest reads
// the translated set-1 bytes (0x1e, 0x9e for 'a'), so each byte read is
// turned back through the inverse of the controller's fixed translation
// table. The decoder assumes translation is on (every PC BIOS and OS sets it
// up so); a guest that turns it off reads set-2 bytes and gets them back
// translated wrongly.
//
// Bytes that are not scancodes, the keyboard's ACK (0xfa) and RESEND (0xfe)
// answers to the guest's commands (LED changes, probing), are dropped. Other
// command answers during the guest's keyboard probe (self-test 0x55, ID
// 0xab 0x41, ...) cannot be told apart from scancodes and are reported.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace pyrebox {

struct Keycodes {
    std::array<uint8_t, 2> codes{};
    size_t count = 0;
};

// The PyREBox keycodes (zero, one or two) for one byte the guest read from
// the keyboard. Stateless: a release is reported as 0xf0 followed by the
// key's code, as the keyboard itself sends it in set 2.
Keycodes ps2_keycodes_for_read(uint8_t byte_read);

// The set-2 scancode the controller translates to `set1` (0x00-0x7f), or
// `set1` itself when no set-2 code translates to it.
uint8_t ps2_untranslate(uint8_t set1);

}  // namespace pyrebox
