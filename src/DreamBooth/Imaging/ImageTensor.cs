using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Imaging;

/// <summary>
/// Conversions between image tensors and <see cref="Image{Rgb24}"/>. Decoding follows diffusers'
/// <c>VaeImageProcessor</c>: <c>((x / 2 + 0.5).clamp(0, 1) * 255).round()</c> (round half to even, as numpy) for
/// the VAE range [-1, 1]; encoding follows <c>pil_to_numpy</c> + <c>normalize</c>: <c>2 * (pixel / 255) - 1</c>.
/// </summary>
public static class ImageTensor
{
    /// <summary>
    /// The well-known linear approximation from Stable Diffusion 1.x/2.x latents (the scaled latents the UNet sees)
    /// to RGB in roughly [-1, 1], as used by AUTOMATIC1111's "Approx cheap" live preview (rows: latent channel,
    /// columns: R, G, B).
    /// </summary>
    public static readonly float[,] LatentRgbFactors =
    {
        { 0.298f, 0.207f, 0.208f },
        { 0.187f, 0.286f, 0.173f },
        { -0.158f, 0.189f, 0.264f },
        { -0.184f, -0.271f, -0.473f },
    };

    /// <summary>Tensor [B,3,H,W] (or [3,H,W]) in the VAE decode range [-1, 1] → one image per batch item.</summary>
    public static List<Image<Rgb24>> ToImages(Tensor images) => ToImagesCore(images, fromSigned: true, nameof(ToImages));

    /// <summary>Tensor [B,3,H,W] (or [3,H,W]) in [0, 1] → one image per batch item (clamped, ×255, rounded).</summary>
    public static List<Image<Rgb24>> ToImagesUnit(Tensor images) => ToImagesCore(images, fromSigned: false, nameof(ToImagesUnit));

    /// <summary>One image → tensor [3,H,W] float32 in [-1, 1] (the VAE encoder input range, for img2img and training).</summary>
    public static Tensor ToTensor(Image<Rgb24> image) => ToTensorCore(image, signed: true);

    /// <summary>One image → tensor [3,H,W] float32 in [0, 1].</summary>
    public static Tensor ToTensorUnit(Image<Rgb24> image) => ToTensorCore(image, signed: false);

    /// <summary>Images of one size → tensor [B,3,H,W] float32 in [-1, 1]. Throws when sizes differ (no silent resizing).</summary>
    public static Tensor ToBatch(IReadOnlyList<Image<Rgb24>> images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0)
            throw new ArgumentException("ToBatch needs at least one image.", nameof(images));
        var (w, h) = (images[0].Width, images[0].Height);
        for (int i = 1; i < images.Count; i++)
        {
            if (images[i].Width != w || images[i].Height != h)
                throw new ArgumentException(
                    $"Image {i} is {images[i].Width}x{images[i].Height} but image 0 is {w}x{h}; a batch needs one size. " +
                    "Resize or crop the images first.", nameof(images));
        }
        using var scope = NewDisposeScope();
        var list = images.Select(ToTensor).ToArray();
        return stack(list).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Rough RGB preview of a 4-channel SD latent [B,4,h,w] (or [4,h,w]) using <see cref="LatentRgbFactors"/>;
    /// returns [B,3,h,w] in [-1, 1] (clamped). The preview is at latent resolution (1/8 of the image).
    /// </summary>
    public static Tensor LatentToRgbPreview(Tensor latents)
    {
        ArgumentNullException.ThrowIfNull(latents);
        using var scope = NewDisposeScope();
        var x = latents.dim() == 3 ? latents.unsqueeze(0) : latents;
        if (x.dim() != 4 || x.shape[1] != 4)
            throw new ArgumentException(
                $"Latent preview expects a tensor [B,4,h,w] or [4,h,w]; got [{string.Join(",", latents.shape)}].", nameof(latents));
        var factors = tensor(LatentRgbFactors, ScalarType.Float32, x.device);
        var rgb = einsum("blhw,lr->brhw", x.to_type(ScalarType.Float32), factors);
        return rgb.clamp(-1, 1).MoveToOuterDisposeScope();
    }

    /// <summary>Latent preview as images (convenience for progress displays).</summary>
    public static List<Image<Rgb24>> LatentPreviewImages(Tensor latents)
    {
        using var scope = NewDisposeScope();
        return ToImages(LatentToRgbPreview(latents));
    }

    static List<Image<Rgb24>> ToImagesCore(Tensor images, bool fromSigned, string method)
    {
        ArgumentNullException.ThrowIfNull(images);
        using var scope = NewDisposeScope();
        var x = images.dim() == 3 ? images.unsqueeze(0) : images;
        if (x.dim() != 4 || x.shape[1] != 3)
            throw new ArgumentException(
                $"{method} expects an image tensor [B,3,H,W] or [3,H,W]; got [{string.Join(",", images.shape)}].", nameof(images));
        if (!x.is_floating_point())
            throw new ArgumentException($"{method} expects a floating-point tensor; got {x.dtype}.", nameof(images));
        // As diffusers' postprocess: denormalize and clamp in the tensor's own dtype, then .float() on the CPU,
        // then (x * 255).round() (torch.round rounds half to even, like numpy in numpy_to_pil).
        x = x.detach();
        if (fromSigned)
            x = x * 0.5 + 0.5;
        x = x.clamp(0, 1).cpu().to_type(ScalarType.Float32);
        var bytes = (x * 255).round().to_type(ScalarType.Byte).permute(0, 2, 3, 1).contiguous();
        int b = (int)bytes.shape[0], h = (int)bytes.shape[1], w = (int)bytes.shape[2];
        var all = bytes.data<byte>().ToArray();
        var result = new List<Image<Rgb24>>(b);
        int per = h * w * 3;
        for (int i = 0; i < b; i++)
            result.Add(Image.LoadPixelData<Rgb24>(all.AsSpan(i * per, per), w, h));
        return result;
    }

    static Tensor ToTensorCore(Image<Rgb24> image, bool signed)
    {
        ArgumentNullException.ThrowIfNull(image);
        var buf = new byte[image.Width * image.Height * 3];
        image.CopyPixelDataTo(buf);
        using var scope = NewDisposeScope();
        var t = tensor(buf, new long[] { image.Height, image.Width, 3 }).permute(2, 0, 1).to_type(ScalarType.Float32) / 255.0f;
        if (signed)
            t = t * 2.0f - 1.0f;
        return t.contiguous().MoveToOuterDisposeScope();
    }
}
