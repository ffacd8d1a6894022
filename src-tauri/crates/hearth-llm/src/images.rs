//! Images in a request: which ones a provider may see, and how big they are.
//!
//! Only [`ImageSource::Inline`] images are ever sent. An [`ImageSource::Attachment`] names an
//! inbox row; the broker must replace it with the bytes before calling, so one reaching this
//! crate is a bug upstream, and [`check`] refuses the whole request rather than send a
//! conversation with a photo silently missing.

use base64::Engine as _;
use hearth_proto::llm::{CompletionRequest, ImageSource};

use crate::error::LlmError;

/// Base64 characters decoded to find an image's dimensions: 256 KiB of text is 192 KiB of
/// image, enough to reach a JPEG's frame header past a large EXIF block.
const HEADER_BASE64_CHARS: usize = 256 * 1024;

/// `Err(LlmError::Config)` when an image in `req` is not inline.
pub(crate) fn check(req: &CompletionRequest) -> Result<(), LlmError> {
    let named = req.messages.iter().flat_map(|m| &m.images).any(|i| matches!(i, ImageSource::Attachment { .. }));
    if named {
        return Err(LlmError::Config(
            "a request names an image by its inbox row instead of carrying it; the broker must inline images \
             before calling the provider"
                .to_owned(),
        ));
    }
    Ok(())
}

/// The inline images, as `(media_type, base64 data)`, in order; attachments are skipped (see
/// [`check`]).
pub(crate) fn inline(images: &[ImageSource]) -> impl Iterator<Item = (&str, &str)> {
    images.iter().filter_map(|i| match i {
        ImageSource::Inline { media_type, data } => Some((media_type.as_str(), data.as_str())),
        ImageSource::Attachment { .. } => None,
    })
}

/// Width and height from the header of a base64-encoded image (JPEG, PNG, GIF, WebP and the
/// other formats `imagesize` reads), decoding only its start; `None` when they cannot be read.
pub fn inline_dimensions(data: &str) -> Option<(u32, u32)> {
    let data = data.trim();
    // A prefix that is a whole number of base64 quanta decodes on its own.
    let take = data.len().min(HEADER_BASE64_CHARS) / 4 * 4;
    let head = data.get(..take)?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(head).ok()?;
    let size = imagesize::blob_size(&bytes).ok()?;
    Some((u32::try_from(size.width).ok()?, u32::try_from(size.height).ok()?))
}
