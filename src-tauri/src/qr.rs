//! The pairing link as a QR code, so the admin can pair a member by pointing their phone's camera
//! at the screen.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// An SVG document encoding `text`. Dark modules on white, with the quiet zone scanners need;
/// the UI shows it on a white card in dark mode too.
pub fn svg(text: &str) -> String {
    match QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M) {
        Ok(code) => code
            .render::<svg::Color<'_>>()
            .min_dimensions(200, 200)
            .dark_color(svg::Color("#111111"))
            .light_color(svg::Color("#ffffff"))
            .quiet_zone(true)
            .build(),
        // Only text longer than a QR code holds fails; a pairing link is ~60 characters.
        Err(e) => {
            tracing::error!(error = %e, len = text.len(), "cannot draw a QR code");
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_pairing_link_becomes_an_svg_document() {
        let s = super::svg("https://t.me/ana_hearth_bot?start=K7QW2M9P");
        assert!(s.starts_with("<?xml") && s.contains("<svg") && s.ends_with("</svg>"), "{}", &s[..80.min(s.len())]);
        // Different links draw different codes.
        assert_ne!(s, super::svg("https://t.me/ana_hearth_bot?start=K7QW2M9Q"));
    }
}
