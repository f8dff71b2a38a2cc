using System.Globalization;
using System.IO.Compression;
using DreamBooth.Loading;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Metadata;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace DreamBooth.Imaging.Import;

/// <summary>
/// Brings DreamBooth instance photos into a session folder the way the fast-DreamBooth Colab did (cell 4): accepts
/// files, folders and .zip archives; applies EXIF orientation; crops (centre or entropy smart crop) and resizes to the
/// training resolution; writes each image as a PNG (atomically, never overwriting a different image) with its caption
/// in a sidecar .txt; and reports, per file, what a person should fix (unreadable, too small, blurry, near-duplicate,
/// heavily cropped, animated, CMYK...). Bad files never throw: each gets a report line and is skipped.
/// </summary>
public sealed class InstanceImageImporter
{
    static readonly Configuration Config = Configuration.Default;

    /// <summary>Creates an importer; throws <see cref="ArgumentException"/> if <paramref name="options"/> are invalid.</summary>
    public InstanceImageImporter(ImportOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
    }

    public ImportOptions Options { get; }

    /// <summary>Imports files, folders (their top-level files) and .zip archives, in the given order.</summary>
    /// <param name="paths">Image files, folders or .zip files; a .txt beside an image is its caption.</param>
    /// <param name="destinationFolder">The session's instance-images folder (created if missing).</param>
    /// <param name="progress">Receives one report before each file and one at the end.</param>
    /// <param name="cancellationToken">Stops between files (throws <see cref="OperationCanceledException"/>; files
    /// written so far stay, each complete).</param>
    public ImportReport Import(IEnumerable<string> paths, string destinationFolder,
        IProgress<ImportProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(paths);
        ArgumentException.ThrowIfNullOrWhiteSpace(destinationFolder);
        var dest = Path.GetFullPath(destinationFolder);
        try { Directory.CreateDirectory(dest); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            throw new IOException($"Cannot create the destination folder {dest}: {ex.Message}. Choose a writable folder.", ex);
        }

        var archives = new List<ZipArchive>();
        try
        {
            var items = Gather(paths.ToList(), archives);
            var reports = new List<ImageReport>(items.Count);
            var claimed = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            for (int i = 0; i < items.Count; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                progress?.Report(new ImportProgress(i, items.Count, items[i].DisplayPath));
                reports.Add(ProcessSafely(items[i], dest, claimed, cancellationToken));
            }
            var pairs = FindNearDuplicates(reports);
            progress?.Report(new ImportProgress(items.Count, items.Count, ""));
            return new ImportReport(dest, Options, reports, pairs);
        }
        finally
        {
            foreach (var a in archives) a.Dispose();
        }
    }

    /// <summary>Imports one file, folder or .zip.</summary>
    public ImportReport Import(string path, string destinationFolder,
        IProgress<ImportProgress>? progress = null, CancellationToken cancellationToken = default) =>
        Import([path], destinationFolder, progress, cancellationToken);

    // ---------------------------------------------------------------- sources

    sealed record SourceItem(
        string DisplayPath,
        string Name,
        long? Length,
        Func<long, byte[]>? Read,
        Func<string?>? ReadSidecar,
        IssueKind? ProblemKind = null,
        string? Problem = null,
        IssueSeverity ProblemSeverity = IssueSeverity.Error,
        Func<long, byte[]>? ReadMask = null);

    sealed class FileTooLargeException(long size) : Exception($"{size} bytes")
    {
        public long Size { get; } = size;
    }

    static bool IsCaptionFile(string name) => name.EndsWith(".txt", StringComparison.OrdinalIgnoreCase);

    /// <summary>A subject mask beside an image (<c>name-masklabel.png</c>, see <see cref="Training.MaskFiles"/>): imported with it.</summary>
    static bool IsMaskFile(string name) => Training.MaskFiles.IsMask(name);

    static bool IsZip(string path)
    {
        if (path.EndsWith(".zip", StringComparison.OrdinalIgnoreCase)) return true;
        try
        {
            using var fs = File.OpenRead(path);
            Span<byte> head = stackalloc byte[4];
            return fs.Read(head) == 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return false; }
    }

    List<SourceItem> Gather(List<string> paths, List<ZipArchive> archives)
    {
        var items = new List<SourceItem>();
        // Loose files are grouped so that a listed .txt beside a listed image is consumed as its caption.
        var looseFiles = new List<string>();
        void FlushLoose()
        {
            items.AddRange(FromFiles(looseFiles, listedOnly: false));
            looseFiles.Clear();
        }
        foreach (var raw in paths)
        {
            if (string.IsNullOrWhiteSpace(raw))
            {
                FlushLoose();
                items.Add(new SourceItem("(empty path)", "", null, null, null, IssueKind.FileNotFound, "an empty path was given; pass a file, folder or .zip path"));
                continue;
            }
            string p;
            try { p = Path.GetFullPath(raw); }
            catch (Exception ex) when (ex is ArgumentException or NotSupportedException or PathTooLongException)
            {
                FlushLoose();
                items.Add(new SourceItem(raw, raw, null, null, null, IssueKind.FileNotFound, $"not a valid path ({ex.Message})"));
                continue;
            }
            if (Directory.Exists(p))
            {
                FlushLoose();
                List<string> files;
                try { files = Directory.EnumerateFiles(p).Order(StringComparer.Ordinal).ToList(); }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    items.Add(new SourceItem(p, Path.GetFileName(p), null, null, null, IssueKind.FileNotFound, $"cannot list the folder: {ex.Message}"));
                    continue;
                }
                items.AddRange(FromFiles(files, listedOnly: true));
            }
            else if (File.Exists(p) && IsZip(p))
            {
                FlushLoose();
                items.AddRange(FromZip(p, archives));
            }
            else looseFiles.Add(p);
        }
        FlushLoose();
        return items;
    }

    /// <summary>Files on disk. listedOnly: sidecars must be among <paramref name="files"/> (folder listing); otherwise a
    /// .txt beside the image on disk is used too.</summary>
    IEnumerable<SourceItem> FromFiles(List<string> files, bool listedOnly)
    {
        var captionFiles = files.Where(IsCaptionFile).ToList();
        var maskFiles = files.Where(IsMaskFile).ToList();
        var usedCaptions = new HashSet<string>(StringComparer.Ordinal);
        var result = new List<SourceItem>();
        foreach (var f in files)
        {
            if (IsCaptionFile(f) || IsMaskFile(f)) continue;
            var name = Path.GetFileName(f);
            if (!File.Exists(f))
            {
                result.Add(new SourceItem(f, name, null, null, null, IssueKind.FileNotFound,
                    "file not found; check the path (or copy it into the folder first)"));
                continue;
            }
            var sidecar = Path.ChangeExtension(f, ".txt");
            var match = captionFiles.FirstOrDefault(c => string.Equals(c, sidecar, StringComparison.OrdinalIgnoreCase));
            if (match == null && !listedOnly && File.Exists(sidecar)) match = sidecar;
            if (match != null) usedCaptions.Add(match);
            var maskPath = Training.MaskFiles.PathFor(f);
            var mask = maskFiles.FirstOrDefault(m => string.Equals(m, maskPath, StringComparison.OrdinalIgnoreCase));
            if (mask == null && !listedOnly && File.Exists(maskPath)) mask = maskPath;
            if (mask != null) usedCaptions.Add(mask);
            long len = 0;
            try { len = new FileInfo(f).Length; } catch (IOException) { }
            result.Add(new SourceItem(f, name, len,
                max =>
                {
                    var fi = new FileInfo(f);
                    if (fi.Length > max) throw new FileTooLargeException(fi.Length);
                    return File.ReadAllBytes(f);
                },
                match == null ? null : () => ReadSmallText(match),
                ReadMask: mask == null ? null : max => ReadSmallFile(mask, max)));
        }
        foreach (var c in captionFiles.Where(c => !usedCaptions.Contains(c)))
            result.Add(new SourceItem(c, Path.GetFileName(c), null, null, null, IssueKind.OrphanCaption,
                $"caption file with no image named '{Path.GetFileNameWithoutExtension(c)}.*' beside it; ignored", IssueSeverity.Info));
        foreach (var m in maskFiles.Where(m => !usedCaptions.Contains(m)))
            result.Add(new SourceItem(m, Path.GetFileName(m), null, null, null, IssueKind.OrphanMask, OrphanMaskMessage(Path.GetFileName(m)), IssueSeverity.Info));
        // Keep input order: images and orphan captions interleaved by path.
        var order = files.Select((f, i) => (f, i)).ToDictionary(t => t.f, t => t.i, StringComparer.Ordinal);
        return result.OrderBy(r => order.GetValueOrDefault(r.DisplayPath, int.MaxValue));
    }

    static string OrphanMaskMessage(string maskName) =>
        $"mask file with no image named '{maskName[..^Training.MaskFiles.Suffix.Length]}.*' beside it; ignored";

    static byte[] ReadSmallFile(string path, long max)
    {
        var fi = new FileInfo(path);
        if (fi.Length > max) throw new FileTooLargeException(fi.Length);
        return File.ReadAllBytes(path);
    }

    static string ReadSmallText(string path)
    {
        var fi = new FileInfo(path);
        if (fi.Length > 64 * 1024) throw new IOException($"the caption file is {fi.Length} bytes; captions are short (under 64 KB)");
        return File.ReadAllText(path);
    }

    IEnumerable<SourceItem> FromZip(string zipPath, List<ZipArchive> archives)
    {
        ZipArchive zip;
        try
        {
            zip = ZipFile.OpenRead(zipPath);
        }
        catch (Exception ex) when (ex is InvalidDataException or IOException or UnauthorizedAccessException or NotSupportedException)
        {
            return [new SourceItem(zipPath, Path.GetFileName(zipPath), null, null, null, IssueKind.Corrupt,
                $"not a readable zip archive ({ex.Message}); re-create the zip or import the folder instead")];
        }
        archives.Add(zip);
        List<ZipArchiveEntry> entries;
        try { entries = zip.Entries.Where(e => !e.FullName.EndsWith('/') && e.Name.Length > 0).ToList(); }
        catch (Exception ex) when (ex is InvalidDataException or IOException)
        {
            return [new SourceItem(zipPath, Path.GetFileName(zipPath), null, null, null, IssueKind.Corrupt,
                $"the zip's file list is damaged ({ex.Message}); re-create the zip")];
        }
        var byName = new Dictionary<string, ZipArchiveEntry>(StringComparer.OrdinalIgnoreCase);
        foreach (var e in entries) byName.TryAdd(e.FullName, e);
        var used = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var result = new List<(int Order, SourceItem Item)>();
        for (int i = 0; i < entries.Count; i++)
        {
            var e = entries[i];
            var display = $"{zipPath}!/{e.FullName}";
            if (e.FullName.StartsWith("__MACOSX/", StringComparison.Ordinal) || e.Name.StartsWith("._", StringComparison.Ordinal))
            {
                result.Add((i, new SourceItem(display, e.Name, null, null, null, IssueKind.NotAnImage,
                    "macOS metadata (resource fork) stored in the zip; ignored", IssueSeverity.Info)));
                continue;
            }
            if (IsCaptionFile(e.Name) || IsMaskFile(e.Name)) continue;
            var stemPath = e.FullName[..^Path.GetExtension(e.Name).Length];
            Func<string?>? sidecar = null;
            if (byName.TryGetValue(stemPath + ".txt", out var cap))
            {
                used.Add(cap.FullName);
                sidecar = () => ReadZipText(cap);
            }
            Func<long, byte[]>? readMask = null;
            if (byName.TryGetValue(stemPath + Training.MaskFiles.Suffix, out var maskEntry))
            {
                used.Add(maskEntry.FullName);
                readMask = max => ReadZipEntry(maskEntry, max);
            }
            var entry = e;
            result.Add((i, new SourceItem(display, e.Name, e.Length, max => ReadZipEntry(entry, max), sidecar, ReadMask: readMask)));
        }
        for (int i = 0; i < entries.Count; i++)
        {
            var e = entries[i];
            if (IsCaptionFile(e.Name) && !used.Contains(e.FullName))
                result.Add((i, new SourceItem($"{zipPath}!/{e.FullName}", e.Name, null, null, null, IssueKind.OrphanCaption,
                    $"caption file with no image named '{Path.GetFileNameWithoutExtension(e.Name)}.*' beside it; ignored", IssueSeverity.Info)));
            else if (IsMaskFile(e.Name) && !used.Contains(e.FullName))
                result.Add((i, new SourceItem($"{zipPath}!/{e.FullName}", e.Name, null, null, null, IssueKind.OrphanMask, OrphanMaskMessage(e.Name), IssueSeverity.Info)));
        }
        return result.OrderBy(t => t.Order).Select(t => t.Item).ToList();
    }

    static byte[] ReadZipEntry(ZipArchiveEntry e, long max)
    {
        if (e.Length > max) throw new FileTooLargeException(e.Length);
        using var s = e.Open();
        using var ms = new MemoryStream();
        var buf = new byte[81920];
        int n;
        // The declared size can lie (zip bombs): count what is actually inflated.
        while ((n = s.Read(buf)) > 0)
        {
            ms.Write(buf, 0, n);
            if (ms.Length > max) throw new FileTooLargeException(ms.Length);
        }
        return ms.ToArray();
    }

    static string ReadZipText(ZipArchiveEntry e)
    {
        var bytes = ReadZipEntry(e, 64 * 1024);
        return System.Text.Encoding.UTF8.GetString(bytes);
    }

    // ---------------------------------------------------------------- per file

    ImageReport ProcessSafely(SourceItem item, string dest, HashSet<string> claimed, CancellationToken ct)
    {
        var r = new ImageReport(item.DisplayPath);
        if (item.Problem != null)
        {
            r.Status = ImportStatus.Skipped;
            r.Add(item.ProblemSeverity, item.ProblemKind ?? IssueKind.Corrupt, item.Problem);
            return r;
        }
        try
        {
            Process(item, r, dest, claimed, ct);
        }
        catch (OperationCanceledException) { throw; }
        catch (FileTooLargeException ex)
        {
            r.Skip(IssueKind.FileTooLarge, string.Format(CultureInfo.InvariantCulture,
                "refused: the file is {0:F1} MB, over the {1:F0} MB limit (ImportOptions.MaxFileBytes); export a smaller JPEG or raise the limit",
                ex.Size / 1e6, Options.MaxFileBytes / 1e6));
        }
        catch (Exception ex) when (ex is SixLabors.ImageSharp.ImageFormatException or InvalidDataException or NotSupportedException
                                       or ArgumentException or IndexOutOfRangeException or InvalidOperationException)
        {
            r.OutputPath = null;
            r.Skip(IssueKind.Corrupt, $"unreadable: the {FormatName(r.Format)} data is corrupt ({ex.Message.TrimEnd('.')}); re-export or re-download it");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            r.OutputPath = null;
            r.Skip(IssueKind.WriteFailed, $"I/O error: {ex.Message}");
        }
#pragma warning disable CA1031 // A bad file must never crash an import: every other failure becomes a report line.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            r.OutputPath = null;
            r.Skip(IssueKind.Corrupt, $"could not be imported: {ex.GetType().Name}: {ex.Message}");
        }
        return r;
    }

    static string FormatName(ImageContainer c) => c switch
    {
        ImageContainer.Jpeg => "JPEG",
        ImageContainer.Png => "PNG",
        ImageContainer.Gif => "GIF",
        ImageContainer.Webp => "WebP",
        ImageContainer.Bmp => "BMP",
        _ => "image",
    };

    static readonly Dictionary<ImageContainer, string[]> Extensions = new()
    {
        [ImageContainer.Jpeg] = [".jpg", ".jpeg", ".jpe", ".jfif"],
        [ImageContainer.Png] = [".png"],
        [ImageContainer.Gif] = [".gif"],
        [ImageContainer.Webp] = [".webp"],
        [ImageContainer.Bmp] = [".bmp", ".dib"],
    };

    void Process(SourceItem item, ImageReport r, string dest, HashSet<string> claimed, CancellationToken ct)
    {
        var inv = CultureInfo.InvariantCulture;
        if (item.Length is { } declared && declared > Options.MaxFileBytes) throw new FileTooLargeException(declared);
        var data = item.Read!(Options.MaxFileBytes);

        // 1. What is it? (by content, not by name)
        var info = ImageFileInspector.Inspect(data);
        r.Format = info.Container;
        if (info.Container == ImageContainer.Unknown)
        {
            r.Skip(IssueKind.NotAnImage, $"not an image: {info.Problem}; remove it from the instance images");
            return;
        }
        var ext = Path.GetExtension(item.Name).ToLowerInvariant();
        if (!Extensions[info.Container].Contains(ext))
            r.Add(IssueSeverity.Info, IssueKind.ExtensionMismatch,
                $"named '{ext}' but the content is {FormatName(info.Container)}; imported by its content");

        // 2. Header only: refuse decompression bombs before any pixel is decoded.
        IImageInfo? header;
        using (var ms = new MemoryStream(data, writable: false))
            header = Image.Identify(Config, ms, out _);
        if (header == null)
        {
            r.Skip(IssueKind.Corrupt, $"unreadable: the {FormatName(info.Container)} header could not be read; re-export the picture");
            return;
        }
        r.Width = header.Width;
        r.Height = header.Height;
        long pixels = (long)header.Width * header.Height;
        if (pixels > Options.MaxPixels || header.Width > Options.MaxSide || header.Height > Options.MaxSide)
        {
            r.Skip(IssueKind.DecompressionBomb, string.Format(inv,
                "refused before decoding: the header claims {0}x{1} ({2:F1} MP), over the limit of {3:F1} MP and {4} px per side " +
                "(ImportOptions.MaxPixels / MaxSide). A file like this is a decompression bomb or far larger than training needs; downscale it first.",
                header.Width, header.Height, pixels / 1e6, Options.MaxPixels / 1e6, Options.MaxSide));
            return;
        }
        if (info.Container == ImageContainer.Webp && info.FrameCount > 1 && pixels * info.FrameCount > Options.MaxPixels)
        {
            r.Skip(IssueKind.DecompressionBomb, string.Format(inv,
                "refused before decoding: animated WebP with {0} frames of {1}x{2} ({3:F1} MP in all), over ImportOptions.MaxPixels; export the frame you want as PNG.",
                info.FrameCount, header.Width, header.Height, pixels * info.FrameCount / 1e6));
            return;
        }

        // 3. Structure: refuse truncated / damaged files (a lenient decoder would pad them with grey).
        if (!info.Complete)
        {
            var kind = info.Problem!.StartsWith("truncated", StringComparison.Ordinal) ? IssueKind.Truncated : IssueKind.Corrupt;
            r.Skip(kind, $"{info.Problem}; re-copy or re-download the original");
            return;
        }
        ct.ThrowIfCancellationRequested();

        // 4. Decode (GIF: first frame only), orient, flatten onto white.
        Image<Rgba32> decoded;
        using (var ms = new MemoryStream(data, writable: false))
            decoded = info.Container == ImageContainer.Gif
                ? Image.Load<Rgba32>(Config, ms, new GifDecoder { DecodingMode = FrameDecodingMode.First })
                : Image.Load<Rgba32>(Config, ms);
        using var rgb = Flatten(decoded, r);
        if (info.IsAnimated)
            r.Add(IssueSeverity.Warning, IssueKind.Animated, string.Format(inv,
                "animated {0} with {1} frames: only the first frame was imported; check it shows the subject, or export the frame you want",
                FormatName(info.Container), info.FrameCount));
        if (info.IsCmykJpeg)
            r.Add(IssueSeverity.Info, IssueKind.CmykConverted,
                $"CMYK JPEG (print colour space{(info.AdobeTransform == 2 ? ", YCCK-coded" : "")}) converted to RGB without colour management; check the colours of the PNG");

        int w = rgb.Width, h = rgb.Height, shortSide = Math.Min(w, h), longSide = Math.Max(w, h);
        r.Width = w;
        r.Height = h;

        // 5. Size and shape checks.
        if (shortSide < Options.EffectiveRejectBelowSide)
        {
            r.Skip(IssueKind.TooSmall, string.Format(inv,
                "too small to use: {0}x{1}, short side {2} px is below {3} px (ImportOptions.RejectBelowSide); at {4}x{4} it would be a {5:F0}x upscale of mush. Use a larger original.",
                w, h, shortSide, Options.EffectiveRejectBelowSide, Options.Resolution, Options.Resolution / (double)shortSide));
            return;
        }
        if (shortSide < Options.EffectiveMinSide)
            r.Add(IssueSeverity.Warning, IssueKind.TooSmall, string.Format(inv,
                "small: {0}x{1}, short side {2} px is below the {3} px training resolution; it is upscaled {4:F2}x and will look soft. Use a larger original if you have one.",
                w, h, shortSide, Options.Resolution, Options.Resolution / (double)shortSide));
        double aspect = longSide / (double)shortSide;
        if (aspect >= Options.ExtremeAspectRatio)
            r.Add(IssueSeverity.Warning, IssueKind.ExtremeAspectRatio, string.Format(inv,
                "extreme aspect ratio {0:F2}:1 ({1}x{2}): {3:F0}% of the picture is cropped away; crop it yourself around the subject",
                aspect, w, h, 100 * (1 - shortSide / (double)longSide)));

        // 6. Crop, measure, resize.
        // a readable mask of the image's size is loaded first: in smart mode it chooses the crop (it knows the subject)
        using var mask = item.ReadMask is null ? null : LoadMask(item.ReadMask, w, h, r);
        var box = Options.CropMode != CropMode.Smart ? SmartCrop.Center(w, h) : mask is not null ? SmartCrop.FromMask(mask) : SmartCrop.Find(rgb);
        r.Crop = box;
        r.PerceptualHash = PerceptualHash.Compute(rgb);
        ct.ThrowIfCancellationRequested();
        using var square = rgb.Clone(c => c.Crop(new Rectangle(box.X, box.Y, box.Size, box.Size)));
        double sharp = BlurDetector.Score(square, Options.Resolution);
        r.Sharpness = sharp;
        if (sharp < Options.BlurThreshold)
            r.Add(IssueSeverity.Warning, IssueKind.Blurry, string.Format(inv,
                "blurry: sharpness {0:F1} is below {1:F0} (variance of the Laplacian at {2} px; ImportOptions.BlurThreshold); users got better results after removing blurry photos",
                sharp, Options.BlurThreshold, BlurDetector.AnalysisSide(Options.Resolution)));
        int res = Options.Resolution;
        var maskPng = mask is null ? null : CropMask(mask, box, res);
        square.Mutate(c => c.Resize(new ResizeOptions
        {
            Size = new Size(res, res),
            Mode = ResizeMode.Stretch,
            Sampler = KnownResamplers.Lanczos3,
        }));
        byte[] png;
        using (var ms = new MemoryStream())
        {
            square.Save(ms, new PngEncoder { ColorType = PngColorType.Rgb, BitDepth = PngBitDepth.Bit8 });
            png = ms.ToArray();
        }

        // 7. Caption.
        var (caption, source) = ChooseCaption(item, r);
        r.Caption = caption;
        r.CaptionSource = source;

        // 8. Write: a free name, or the same name when an identical image is already there.
        ct.ThrowIfCancellationRequested();
        var stem = SafeStem(item.Name);
        var (outName, identical) = ChooseName(dest, stem, png, claimed);
        var outPath = Path.Combine(dest, outName + ".png");
        if (identical)
            r.Add(IssueSeverity.Info, IssueKind.AlreadyPresent, $"'{outName}.png' already holds this exact image; kept it");
        else
        {
            if (!string.Equals(outName, stem, StringComparison.Ordinal))
                r.Add(IssueSeverity.Info, IssueKind.Renamed, $"saved as '{outName}.png' because '{stem}.png' already holds a different image");
            AtomicFile.WriteAllBytes(outPath, png);
        }
        r.OutputPath = outPath;
        if (Options.WriteCaptionFiles && caption.Length > 0)
        {
            var capPath = Path.Combine(dest, outName + ".txt");
            AtomicFile.WriteAllText(capPath, caption);
            r.CaptionPath = capPath;
        }
        if (maskPng is not null)
        {
            var maskPath = Path.Combine(dest, outName + Training.MaskFiles.Suffix);
            AtomicFile.WriteAllBytes(maskPath, maskPng);
            r.MaskPath = maskPath;
        }
        r.Status = ImportStatus.Imported;
    }

    /// <summary>
    /// The image's mask, oriented by its own EXIF tag; null (with a warning: the image then trains unmasked) when it is
    /// unreadable or not the image's size.
    /// </summary>
    Image<L8>? LoadMask(Func<long, byte[]> read, int width, int height, ImageReport r)
    {
        Image<L8> mask;
        try
        {
            using var ms = new MemoryStream(read(Options.MaxFileBytes), writable: false);
            mask = Image.Load<L8>(Config, ms);
        }
        catch (Exception ex) when (ex is UnknownImageFormatException or InvalidImageContentException or NotSupportedException or IOException or FileTooLargeException)
        {
            r.Add(IssueSeverity.Warning, IssueKind.Mask, $"its mask ({Training.MaskFiles.Suffix}) could not be read ({ex.Message}); imported without a mask, so masked training treats it as unmasked. Re-export the mask as a grey-scale PNG");
            return null;
        }
        mask.Mutate(c => c.AutoOrient());
        if (mask.Width == width && mask.Height == height) return mask;
        r.Add(IssueSeverity.Warning, IssueKind.Mask, string.Format(CultureInfo.InvariantCulture,
            "its mask is {0}x{1} but the image is {2}x{3}; imported without a mask (masked training treats it as unmasked). A mask must have its image's size",
            mask.Width, mask.Height, width, height));
        mask.Dispose();
        return null;
    }

    /// <summary>The mask cropped with the image's box and resized like it, as a grey-scale PNG.</summary>
    static byte[] CropMask(Image<L8> mask, CropBox box, int resolution)
    {
        using var square = mask.Clone(c => c.Crop(new Rectangle(box.X, box.Y, box.Size, box.Size))
            .Resize(new ResizeOptions { Size = new Size(resolution, resolution), Mode = ResizeMode.Stretch, Sampler = KnownResamplers.Triangle }));
        using var outStream = new MemoryStream();
        square.Save(outStream, new PngEncoder { ColorType = PngColorType.Grayscale, BitDepth = PngBitDepth.Bit8 });
        return outStream.ToArray();
    }

    /// <summary>Takes the first frame, applies EXIF orientation and composites transparency onto white.</summary>
    static Image<Rgb24> Flatten(Image<Rgba32> decoded, ImageReport r)
    {
        Image<Rgba32> img = decoded;
        try
        {
            if (img.Frames.Count > 1)
            {
                var first = img.Frames.CloneFrame(0);
                img.Dispose();
                img = first;
            }
            var orientation = img.Metadata.ExifProfile?.GetValue(ExifTag.Orientation)?.Value ?? 1;
            if (orientation is > 1 and <= 8)
            {
                img.Mutate(c => c.AutoOrient());
                r.Add(IssueSeverity.Info, IssueKind.Orientation, $"rotated/flipped upright as its EXIF orientation ({orientation}) says");
            }
            var rgb = new Image<Rgb24>(img.Width, img.Height);
            bool transparent = false;
            img.ProcessPixelRows(rgb, (src, dst) =>
            {
                for (int y = 0; y < src.Height; y++)
                {
                    var s = src.GetRowSpan(y);
                    var d = dst.GetRowSpan(y);
                    for (int x = 0; x < s.Length; x++)
                    {
                        var p = s[x];
                        if (p.A == 255) { d[x] = new Rgb24(p.R, p.G, p.B); continue; }
                        transparent = true;
                        int a = p.A, ia = 255 - a;
                        d[x] = new Rgb24((byte)((p.R * a + 255 * ia + 127) / 255), (byte)((p.G * a + 255 * ia + 127) / 255), (byte)((p.B * a + 255 * ia + 127) / 255));
                    }
                }
            });
            if (transparent)
                r.Add(IssueSeverity.Info, IssueKind.Transparency, "transparent areas were filled with white");
            return rgb;
        }
        finally
        {
            img.Dispose();
        }
    }

    (string Caption, CaptionSource Source) ChooseCaption(SourceItem item, ImageReport r)
    {
        if (Options.CaptionMode == CaptionMode.InstancePrompt)
            return (CaptionRules.NormalizeSidecar(Options.InstancePrompt!), CaptionSource.InstancePrompt);
        if (Options.CaptionMode == CaptionMode.SidecarOrFileName && item.ReadSidecar != null)
        {
            try
            {
                var text = CaptionRules.NormalizeSidecar(item.ReadSidecar() ?? "");
                if (text.Length > 0) return (text, CaptionSource.Sidecar);
                r.Add(IssueSeverity.Warning, IssueKind.Caption, "its caption file is empty; used the file name instead");
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException or FileTooLargeException)
            {
                r.Add(IssueSeverity.Warning, IssueKind.Caption, $"its caption file could not be read ({ex.Message}); used the file name instead");
            }
        }
        var fromName = CaptionRules.FromFileName(item.Name, Options.UnderscoresAsSpaces);
        if (fromName.Length == 0)
            r.Add(IssueSeverity.Warning, IssueKind.Caption,
                "the file name gives an empty caption; rename it after the identifier (e.g. 'llmcbrrrqqdpj (1).jpg'), add a caption .txt, or set an InstancePrompt");
        else if (CaptionRules.LooksLikeCameraName(fromName))
            r.Add(IssueSeverity.Warning, IssueKind.Caption,
                $"caption \"{fromName}\" comes from a camera file name, not your subject's identifier; rename the files (e.g. 'llmcbrrrqqdpj (1).jpg') or set an InstancePrompt");
        return (fromName, CaptionSource.FileName);
    }

    static string SafeStem(string name)
    {
        var stem = Path.GetFileNameWithoutExtension(name);
        var invalid = Path.GetInvalidFileNameChars();
        var chars = stem.Select(c => invalid.Contains(c) || char.IsControl(c) || c == '\\' || c == '/' ? '_' : c).ToArray();
        var s = new string(chars).Trim().TrimStart('.');
        if (s.Length > 120) s = s[..120];
        return s.Length == 0 ? "image" : s;
    }

    static (string Name, bool Identical) ChooseName(string dest, string stem, byte[] png, HashSet<string> claimed)
    {
        var baseName = CaptionRules.StripCounter(stem);
        if (baseName.Length == 0) baseName = "image";
        for (int k = 1; ; k++)
        {
            var cand = k == 1 ? stem : string.Create(CultureInfo.InvariantCulture, $"{baseName} ({k})");
            if (k == 2 && cand == stem) continue;
            if (claimed.Contains(cand)) continue;
            var path = Path.Combine(dest, cand + ".png");
            if (!File.Exists(path) && !Directory.Exists(path))
            {
                claimed.Add(cand);
                return (cand, false);
            }
            if (File.Exists(path) && new FileInfo(path).Length == png.Length && File.ReadAllBytes(path).AsSpan().SequenceEqual(png))
            {
                claimed.Add(cand);
                return (cand, true);
            }
        }
    }

    List<(string, string, int)> FindNearDuplicates(List<ImageReport> reports)
    {
        var pairs = new List<(string, string, int)>();
        if (Options.DuplicateHammingThreshold < 0) return pairs;
        var imported = reports.Where(r => r.Status == ImportStatus.Imported && r.PerceptualHash.HasValue).ToList();
        for (int j = 1; j < imported.Count; j++)
            for (int i = 0; i < j; i++)
            {
                int d = PerceptualHash.Distance(imported[i].PerceptualHash!.Value, imported[j].PerceptualHash!.Value);
                if (d > Options.DuplicateHammingThreshold) continue;
                pairs.Add((imported[i].SourcePath, imported[j].SourcePath, d));
                imported[j].Add(IssueSeverity.Warning, IssueKind.NearDuplicate, string.Format(CultureInfo.InvariantCulture,
                    "near-duplicate of {0} (pHash distance {1}/64, threshold {2}); keep the better one — duplicates over-weight one pose and push towards near-copies",
                    imported[i].SourcePath, d, Options.DuplicateHammingThreshold));
            }
        return pairs;
    }
}
