namespace DreamBooth.Imaging.Import;

/// <summary>How the square training crop is chosen from a non-square photo.</summary>
public enum CropMode
{
    /// <summary>The centred square of side min(width, height).</summary>
    Center,

    /// <summary>
    /// The square window, slid along the long side, whose luminance histogram has the highest Shannon entropy — the
    /// idea of the fast-DreamBooth Colab's smart crop (taken from AUTOMATIC1111's autocrop entropy points): keep the
    /// most detailed region, drop flat background. An image imported with a subject mask (<c>-masklabel.png</c>) uses
    /// the mask instead: the window that keeps the most of the subject (<see cref="SmartCrop.FromMask"/>).
    /// </summary>
    Smart,
}

/// <summary>Where each image's caption (instance prompt) comes from.</summary>
public enum CaptionMode
{
    /// <summary>A sidecar <c>name.txt</c> next to the image wins; otherwise the file name (Colab convention).</summary>
    SidecarOrFileName,

    /// <summary>Always the file name: <c>llmcbrrrqqdpj (3).jpg</c> → "llmcbrrrqqdpj"; sidecars are ignored.</summary>
    FileName,

    /// <summary>One instance prompt (<see cref="ImportOptions.InstancePrompt"/>) for every image.</summary>
    InstancePrompt,
}

/// <summary>Options for importing DreamBooth instance images into a session folder.</summary>
public sealed record ImportOptions
{
    /// <summary>Training resolution in pixels: every image becomes a Resolution×Resolution PNG. A positive multiple of 64
    /// (512 for SD 1.5, 768 for SD 2.1, 64 for the tiny model).</summary>
    public int Resolution { get; init; } = 512;

    /// <summary>How the square crop is chosen.</summary>
    public CropMode CropMode { get; init; } = CropMode.Smart;

    /// <summary>Where captions come from.</summary>
    public CaptionMode CaptionMode { get; init; } = CaptionMode.SidecarOrFileName;

    /// <summary>The prompt used for every image when <see cref="CaptionMode"/> is <see cref="Import.CaptionMode.InstancePrompt"/>.</summary>
    public string? InstancePrompt { get; init; }

    /// <summary>File-name captions: turn underscores into spaces (the Colab's trainer did, so <c>my_cat.jpg</c> → "my cat").</summary>
    public bool UnderscoresAsSpaces { get; init; } = true;

    /// <summary>Write the caption as <c>name.txt</c> beside each imported PNG.</summary>
    public bool WriteCaptionFiles { get; init; } = true;

    /// <summary>Decompression-bomb guard: refuse images whose header claims more pixels than this (default 64 MP).</summary>
    public long MaxPixels { get; init; } = 64L * 1000 * 1000;

    /// <summary>Decompression-bomb guard: refuse images with a side longer than this many pixels.</summary>
    public int MaxSide { get; init; } = 16384;

    /// <summary>Refuse files (or zip entries) larger than this many bytes.</summary>
    public long MaxFileBytes { get; init; } = 256L * 1024 * 1024;

    /// <summary>Warn when the short side is below this many pixels (the image gets upscaled and looks soft).
    /// Null: the training resolution.</summary>
    public int? MinSide { get; init; }

    /// <summary>Skip images whose short side is below this many pixels (useless even upscaled). Null: Resolution / 4, at least 8.</summary>
    public int? RejectBelowSide { get; init; }

    /// <summary>Warn when the sharpness score (variance of the 4-neighbour Laplacian of the crop's luma, 0–255 scale,
    /// measured at clamp(Resolution, 256, 512) px) is below this. 100 is the usual OpenCV rule of thumb; sharp photos score
    /// several hundred or more, clearly blurred ones a few tens.</summary>
    public double BlurThreshold { get; init; } = 100;

    /// <summary>Two images whose 64-bit DCT perceptual hashes differ in at most this many bits are reported as near-duplicates.</summary>
    public int DuplicateHammingThreshold { get; init; } = 10;

    /// <summary>Warn when long side / short side is at least this (at 2.0, half of the picture is cropped away).</summary>
    public double ExtremeAspectRatio { get; init; } = 2.0;

    /// <summary>The warn threshold actually used for small images.</summary>
    public int EffectiveMinSide => MinSide ?? Resolution;

    /// <summary>The skip threshold actually used for tiny images.</summary>
    public int EffectiveRejectBelowSide => RejectBelowSide ?? Math.Max(8, Resolution / 4);

    /// <summary>Throws <see cref="ArgumentException"/> naming the offending option and the fix.</summary>
    public void Validate()
    {
        if (Resolution <= 0 || Resolution % 64 != 0 || Resolution > 4096)
        {
            int suggestion = Math.Clamp((int)Math.Round(Math.Max(Resolution, 1) / 64.0) * 64, 64, 4096);
            throw new ArgumentException(
                $"ImportOptions.Resolution is {Resolution}, but it must be a positive multiple of 64 up to 4096 " +
                $"(512 for SD 1.5, 768 for SD 2.1, 64 for the tiny model). Set Resolution to {suggestion}.", nameof(Resolution));
        }
        if (!Enum.IsDefined(CropMode))
            throw new ArgumentException($"ImportOptions.CropMode {(int)CropMode} is not a CropMode; use CropMode.Center or CropMode.Smart.", nameof(CropMode));
        if (!Enum.IsDefined(CaptionMode))
            throw new ArgumentException($"ImportOptions.CaptionMode {(int)CaptionMode} is not a CaptionMode; use SidecarOrFileName, FileName or InstancePrompt.", nameof(CaptionMode));
        if (CaptionMode == CaptionMode.InstancePrompt && string.IsNullOrWhiteSpace(InstancePrompt))
            throw new ArgumentException(
                "ImportOptions.InstancePrompt is empty, but CaptionMode is InstancePrompt. Set InstancePrompt " +
                "(e.g. \"photo of llmcbrrrqqdpj person\") or use CaptionMode.SidecarOrFileName.", nameof(InstancePrompt));
        if (MaxPixels < 1)
            throw new ArgumentException($"ImportOptions.MaxPixels is {MaxPixels}; it must be positive (default 64000000).", nameof(MaxPixels));
        if (MaxSide < Resolution)
            throw new ArgumentException($"ImportOptions.MaxSide is {MaxSide}, below the training resolution {Resolution}; set MaxSide to at least {Resolution} (default 16384).", nameof(MaxSide));
        if (MaxFileBytes < 1)
            throw new ArgumentException($"ImportOptions.MaxFileBytes is {MaxFileBytes}; it must be positive (default 268435456).", nameof(MaxFileBytes));
        if (MinSide is < 1)
            throw new ArgumentException($"ImportOptions.MinSide is {MinSide}; use a positive pixel count or null for the training resolution.", nameof(MinSide));
        if (RejectBelowSide is < 1)
            throw new ArgumentException($"ImportOptions.RejectBelowSide is {RejectBelowSide}; use a positive pixel count or null for Resolution / 4.", nameof(RejectBelowSide));
        if (!(BlurThreshold >= 0) || double.IsInfinity(BlurThreshold))
            throw new ArgumentException($"ImportOptions.BlurThreshold is {BlurThreshold}; use a finite value >= 0 (0 disables the check; default 100).", nameof(BlurThreshold));
        if (DuplicateHammingThreshold is < -1 or > 64)
            throw new ArgumentException($"ImportOptions.DuplicateHammingThreshold is {DuplicateHammingThreshold}; use 0..64 bits (-1 disables the check; default 10).", nameof(DuplicateHammingThreshold));
        if (!(ExtremeAspectRatio >= 1) || double.IsInfinity(ExtremeAspectRatio))
            throw new ArgumentException($"ImportOptions.ExtremeAspectRatio is {ExtremeAspectRatio}; use a finite ratio >= 1 (default 2.0).", nameof(ExtremeAspectRatio));
    }
}
