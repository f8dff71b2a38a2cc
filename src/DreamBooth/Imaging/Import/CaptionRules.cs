using System.Text.RegularExpressions;

namespace DreamBooth.Imaging.Import;

/// <summary>
/// The fast-DreamBooth caption conventions: the caption is the file name without its extension and without the
/// " (n)" counter that file managers add to copies (<c>llmcbrrrqqdpj (3).jpg</c> → "llmcbrrrqqdpj"); underscores become
/// spaces as in the Colab's trainer. Unlike that trainer we keep other digits ("sks2" stays "sks2"): it deleted every
/// digit, which silently mangles identifiers that contain numbers.
/// </summary>
public static partial class CaptionRules
{
    [GeneratedRegex(@"\s*\(\d+\)\s*$")]
    private static partial Regex CounterSuffix();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();

    [GeneratedRegex(@"^(img|dsc|dscn|dscf|pxl|dcim|mvimg|screenshot|screen shot|image|photo|picture|whatsapp image|signal)[\s_-]*\d", RegexOptions.IgnoreCase)]
    private static partial Regex CameraName();

    /// <summary>The caption the file-name convention gives for <paramref name="fileName"/> (a name or a path).</summary>
    public static string FromFileName(string fileName, bool underscoresAsSpaces = true)
    {
        var stem = Path.GetFileNameWithoutExtension(fileName.Replace('\\', '/').Split('/')[^1]);
        stem = StripCounter(stem);
        if (underscoresAsSpaces) stem = stem.Replace('_', ' ');
        return Whitespace().Replace(stem, " ").Trim();
    }

    /// <summary>Removes a trailing " (n)" copy counter: "name (2)" → "name".</summary>
    public static string StripCounter(string stem) => CounterSuffix().Replace(stem, "");

    /// <summary>Cleans a sidecar caption: trims and joins lines with single spaces.</summary>
    public static string NormalizeSidecar(string text) => Whitespace().Replace(text.Replace("\uFEFF", ""), " ").Trim();

    /// <summary>True when a caption looks like a camera/phone file name (IMG_2034, PXL_2022…, Screenshot 2022…) rather than
    /// an identifier — training on it teaches the model the wrong word.</summary>
    public static bool LooksLikeCameraName(string caption) => CameraName().IsMatch(caption);
}
