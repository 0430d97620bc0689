// Who the console thinks you are: the identity in your client certificate.
const who = document.getElementById("who");
try {
  const response = await fetch("/api/me", { cache: "no-store" });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const me = await response.json();
  who.textContent = `Signed in as ${me.id} (${me.role}, ${me.town}, ${me.member})`;
} catch (error) {
  who.textContent = `Cannot reach the hub: ${error.message}`;
}
