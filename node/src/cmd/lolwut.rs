//! LOLWUT: the computer art each Redis version ships, and the version line clients read.
//!
//! Redis 7.0 has no art of its own: plain `LOLWUT` (and any VERSION other than 5 or 6) answers
//! just `Redis ver. 7.0.15`. `VERSION 5` draws Georg Nees's *Schotter* in braille characters,
//! `VERSION 6` a city skyline in terminal colours; both are random past their first rows, as in
//! Redis, so only their size, shape and trailing credit line can be compared with Redis's.
//! The drawing rules (canvas sizes, the float arithmetic, the clamps on the arguments) follow
//! Redis's `lolwut5.c` and `lolwut6.c` so that the same arguments give a picture of the same
//! size.

use bytes::Bytes;
use common::resp::Frame;
use rand::Rng;

use crate::cmd::args::int;
use crate::cmd::flags::*;
use crate::cmd::{cmd, CommandSpec};
use crate::error::CmdResult;
use crate::exec::Ctx;

/// The LOLWUT command.
pub static COMMANDS: &[CommandSpec] = &[cmd("lolwut", -1, READONLY | FAST, (0, 0, 0), lolwut)];

/// The version LOLWUT prints (the one clients' feature checks read from INFO too).
const REDIS_VERSION: &str = crate::cmd::info::REDIS_VERSION;

fn lolwut(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut art_args = &args[1..];
    // Redis formats the requested version as an unsigned int ("%u"), so -1 is 4294967295.
    let mut major = None;
    if args.len() >= 3 && args[1].eq_ignore_ascii_case(b"version") {
        major = Some(int(&args[2])? as u32);
        art_args = &args[3..];
    }
    let text = match major {
        Some(5) => schotter(art_args)?,
        Some(6) => skyline(art_args)?,
        _ => format!("Redis ver. {REDIS_VERSION}\n"),
    };
    Ok(Frame::Verbatim("txt", Bytes::from(text)))
}

/// Reads the optional numeric arguments in order, each defaulting and then clamped.
fn numbers<const N: usize>(
    args: &[Bytes],
    defaults: [(i64, i64, i64); N],
) -> Result<[i64; N], crate::error::CommandError> {
    let mut out = [0; N];
    for (i, (default, low, high)) in defaults.into_iter().enumerate() {
        let n = match args.get(i) {
            Some(arg) => int(arg)?,
            None => default,
        };
        out[i] = n.clamp(low, high);
    }
    Ok(out)
}

/// A canvas of small integers (colours), drawn on with clipping as Redis's `lwCanvas` is.
struct Canvas {
    width: i32,
    height: i32,
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: i32, height: i32, background: u8) -> Canvas {
        Canvas { width, height, pixels: vec![background; (width.max(0) * height.max(0)) as usize] }
    }

    fn set(&mut self, x: i32, y: i32, colour: u8) {
        if (0..self.width).contains(&x) && (0..self.height).contains(&y) {
            self.pixels[(x + y * self.width) as usize] = colour;
        }
    }

    fn get(&self, x: i32, y: i32) -> u8 {
        if (0..self.width).contains(&x) && (0..self.height).contains(&y) {
            self.pixels[(x + y * self.width) as usize]
        } else {
            0
        }
    }

    /// Bresenham's line.
    fn line(&mut self, (mut x1, mut y1): (i32, i32), (x2, y2): (i32, i32), colour: u8) {
        let (dx, dy) = ((x2 - x1).abs(), (y2 - y1).abs());
        let (sx, sy) = (if x1 < x2 { 1 } else { -1 }, if y1 < y2 { 1 } else { -1 });
        let mut err = dx - dy;
        loop {
            self.set(x1, y1, colour);
            if x1 == x2 && y1 == y2 {
                return;
            }
            let e2 = err * 2;
            if e2 > -dy {
                err -= dy;
                x1 += sx;
            }
            if e2 < dx {
                err += dx;
                y1 += sy;
            }
        }
    }

    /// A square of side `size` centred on (x, y), turned by `angle` radians: its corners are
    /// points of the circumscribed circle, a quarter turn apart.
    fn square(&mut self, x: i32, y: i32, size: f32, angle: f32, colour: u8) {
        let radius = ((size as f64 / std::f64::consts::SQRT_2) as f32).round() as f64;
        let mut k = (std::f64::consts::FRAC_PI_4 + angle as f64) as f32;
        let mut corners = [(0, 0); 4];
        for corner in &mut corners {
            *corner = (
                ((k as f64).sin() * radius + x as f64).round() as i32,
                ((k as f64).cos() * radius + y as f64).round() as i32,
            );
            k = (k as f64 + std::f64::consts::FRAC_PI_2) as f32;
        }
        for j in 0..4 {
            self.line(corners[j], corners[(j + 1) % 4], colour);
        }
    }
}

/// A uniform number in C's `rand()` range (0..=RAND_MAX, RAND_MAX = 2^31 - 1 on glibc).
fn c_rand(rng: &mut impl Rng) -> i32 {
    rng.gen_range(0..=i32::MAX)
}

/// `LOLWUT VERSION 5 [columns] [squares-per-row] [squares-per-column]`.
fn schotter(args: &[Bytes]) -> Result<String, crate::error::CommandError> {
    let [cols, per_row, per_col] = numbers(args, [(66, 1, 1000), (8, 1, 200), (12, 1, 200)])?;
    let (per_row, per_col) = (per_row as i32, per_col as i32);
    let width = cols as i32 * 2;
    let padding = if width > 4 { 2 } else { 0 };
    let side = (width - padding * 2) as f32 / per_row as f32;
    let height = (side * per_col as f32 + (padding * 2) as f32) as i32;
    let mut canvas = Canvas::new(width, height, 0);
    let mut rng = rand::thread_rng();
    for y in 0..per_col {
        for x in 0..per_row {
            let mut sx = (x as f32 * side + side / 2.0 + padding as f32) as i32;
            let mut sy = (y as f32 * side + side / 2.0 + padding as f32) as i32;
            let mut angle = 0.0;
            // The first two rows stand straight; below them disorder grows row by row.
            if y > 1 {
                let mut r = [0f32; 3];
                for v in &mut r {
                    *v = c_rand(&mut rng) as f32 / i32::MAX as f32 / per_col as f32 * y as f32;
                }
                for v in &mut r {
                    if c_rand(&mut rng) % 2 == 1 {
                        *v = -*v;
                    }
                }
                angle = r[0];
                sx = (sx as f32 + r[1] * side / 3.0) as i32;
                sy = (sy as f32 + r[2] * side / 3.0) as i32;
            }
            canvas.square(sx, sy, side, angle, 1);
        }
    }
    let mut text = braille(&canvas);
    text.push_str("\nGeorg Nees - schotter, plotter on paper, 1968. Redis ver. ");
    text.push_str(REDIS_VERSION);
    text.push('\n');
    Ok(text)
}

/// Renders 2×4 pixel blocks as braille characters (U+2800 plus one bit per dot).
fn braille(canvas: &Canvas) -> String {
    // Dot bit for each pixel of the block, by (dx, dy).
    const DOTS: [(i32, i32, u32); 8] =
        [(0, 0, 0), (0, 1, 1), (0, 2, 2), (1, 0, 3), (1, 1, 4), (1, 2, 5), (0, 3, 6), (1, 3, 7)];
    let mut text = String::new();
    for y in (0..canvas.height).step_by(4) {
        for x in (0..canvas.width).step_by(2) {
            let mut byte = 0;
            for (dx, dy, bit) in DOTS {
                if canvas.get(x + dx, y + dy) != 0 {
                    byte |= 1 << bit;
                }
            }
            text.push(char::from_u32(0x2800 + byte).expect("braille block"));
        }
        // Redis's rule, kept for identical output: only a last row starting exactly on the
        // canvas's last pixel row goes without a newline.
        if y != canvas.height - 1 {
            text.push('\n');
        }
    }
    text
}

/// One building of the skyline.
struct Skyscraper {
    xoff: i32,
    width: i32,
    height: i32,
    windows: bool,
    colour: u8,
}

/// `LOLWUT VERSION 6 [columns] [rows]`.
fn skyline(args: &[Bytes]) -> Result<String, crate::error::CommandError> {
    let [cols, rows] = numbers(args, [(80, 1, 1000), (20, 1, 1000)])?;
    let mut canvas = Canvas::new(cols as i32, rows as i32, 3);
    let mut rng = rand::thread_rng();
    let h = canvas.height;
    // Two passes of window-less buildings, the lighter ones first so they stay behind.
    for colour in [2u8, 1] {
        let mut offset = -10;
        while offset < canvas.width {
            offset += c_rand(&mut rng) % 8;
            let width = 10 + c_rand(&mut rng) % 9;
            let height = if colour == 2 {
                h / 2 + (c_rand(&mut rng) % h) / 2
            } else {
                h / 2 + (c_rand(&mut rng) % h) / 3
            };
            let s = Skyscraper { xoff: offset, width, height, windows: false, colour };
            building(&mut canvas, &s, &mut rng);
            offset += if colour == 2 { width / 2 } else { width + 1 };
        }
    }
    // The foreground, black with lit windows.
    let mut offset = -10;
    while offset < canvas.width {
        offset += c_rand(&mut rng) % 8;
        let mut width = 5 + c_rand(&mut rng) % 14;
        if width % 4 != 0 {
            width += width % 3;
        }
        let height = h / 3 + (c_rand(&mut rng) % h) / 2;
        let s = Skyscraper { xoff: offset, width, height, windows: true, colour: 0 };
        building(&mut canvas, &s, &mut rng);
        offset += width + 5;
    }
    let mut text = String::new();
    for y in 0..canvas.height {
        for x in 0..canvas.width {
            // Foreground and background both set, so every terminal shows the same grey.
            let escape = match canvas.get(x, y) {
                1 => "0;90;100m",
                2 => "0;37;47m",
                3 => "0;97;107m",
                _ => "0;30;40m",
            };
            text.push_str("\x1b[");
            text.push_str(escape);
            text.push_str(" \x1b[0m");
        }
        if y != canvas.height - 1 {
            text.push('\n');
        }
    }
    text.push_str(
        "\nDedicated to the 8 bit game developers of past and present.\n\
         Original 8 bit image from Plaguemon by hikikomori. Redis ver. ",
    );
    text.push_str(REDIS_VERSION);
    text.push('\n');
    Ok(text)
}

/// Draws one building from the ground up; its roof is two pixels narrower on each side, and
/// windows (two pixels wide, one tall, a random grey) keep away from its edges.
fn building(canvas: &mut Canvas, s: &Skyscraper, rng: &mut impl Rng) {
    let start_y = canvas.height - 1;
    let end_y = start_y - s.height + 1;
    let mut y = start_y;
    while y >= end_y {
        for x in s.xoff..s.xoff + s.width {
            if y == end_y && (x <= s.xoff + 1 || x >= s.xoff + s.width - 2) {
                continue;
            }
            let mut colour = s.colour;
            let inner =
                x > s.xoff + 1 && x < s.xoff + s.width - 2 && y > end_y + 1 && y < start_y - 1;
            if s.windows && inner {
                let rel_x = x - (s.xoff + 1);
                let rel_y = y - (end_y + 1);
                if (rel_x / 2) % 2 == 1 && rel_y % 2 == 1 {
                    loop {
                        colour = 1 + (c_rand(rng) % 2) as u8;
                        if colour != s.colour {
                            break;
                        }
                    }
                    // The window's second pixel matches its first.
                    if rel_x % 2 == 1 {
                        colour = canvas.get(x - 1, y);
                    }
                }
            }
            canvas.set(x, y, colour);
        }
        y -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<Bytes> {
        list.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect()
    }

    #[test]
    fn schotter_has_redis_size_and_straight_first_rows() {
        let text = schotter(&args(&[])).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // As Redis 7.0.15 draws it: 66 columns, 196 / 4 = 49 rows of braille, an empty line
        // (the last row's newline and the credit's own), then the credit.
        assert_eq!(lines.len(), 51);
        assert!(lines[..49].iter().all(|l| l.chars().count() == 66));
        assert_eq!(lines[49], "");
        assert_eq!(
            *lines.last().unwrap(),
            "Georg Nees - schotter, plotter on paper, 1968. Redis ver. 7.0.15"
        );
        // The first two rows of squares are not random: two drawings agree there.
        let again = schotter(&args(&[])).unwrap();
        assert_eq!(
            text.lines().take(8).collect::<Vec<_>>(),
            again.lines().take(8).collect::<Vec<_>>()
        );
    }

    #[test]
    fn skyline_fills_the_requested_canvas() {
        let text = skyline(&args(&["10", "3"])).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text:?}");
        assert!(lines[..3].iter().all(|l| l.matches("\x1b[0m").count() == 10));
        assert!(lines[4].ends_with("Redis ver. 7.0.15"));
    }

    #[test]
    fn arguments_are_clamped_and_checked() {
        assert!(schotter(&args(&["x"])).is_err());
        let tiny = schotter(&args(&["-5", "0", "0"])).unwrap();
        assert!(tiny.ends_with("Redis ver. 7.0.15\n"));
        assert!(
            skyline(&args(&["100000", "0"]))
                .unwrap()
                .lines()
                .next()
                .unwrap()
                .matches("\x1b[0m")
                .count()
                == 1000
        );
    }
}
