"""Generate the binary sample documents (PDF, DOCX) in examples/docs from the text below.

The generated files are committed, so this only needs re-running after editing the content here.
fpdf2 is a dev-only tool (not a kbot runtime dependency), so use a separate venv:

    python3 -m venv /tmp/toolvenv && /tmp/toolvenv/bin/pip install fpdf2 python-docx
    /tmp/toolvenv/bin/python examples/make_binary_docs.py

Facts on page 2 and later of the PDFs are deliberate: the evaluation questions check that
readers keep page numbers and do not stop at the first page.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

from docx import Document
from fpdf import FPDF

DOCS = Path(__file__).resolve().parent / "docs"
FIXED_DATE = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)  # fixed so rebuilds only differ when content does

# A PDF is a list of pages; a page is a list of blocks: ("h1"|"h2"|"p", text) or ("table", rows).
Block = tuple[str, object]

EXPENSE_POLICY: list[list[Block]] = [
    [
        ("h1", "Expense and Approval Policy"),
        ("p", "Policy FIN-POL-007 - Owner: Finance (CFO Martin Albrecht) - Version 5.2, "
              "valid from 1 January 2025"),
        ("h2", "1. Scope"),
        ("p", "This policy applies to all employees of Acme Robotics GmbH and its subsidiaries who spend "
              "money on behalf of the company, whether with a corporate card or with their own money. "
              "Travel booking rules are in the separate Travel Policy."),
        ("h2", "2. Submitting expenses"),
        ("p", "All expenses are submitted in SpendWise (spendwise.acme.example), either in the web app or "
              "by photographing the receipt in the mobile app. Submit each expense within 30 days of the "
              "date it was incurred. Expenses submitted later than 90 days are not reimbursed."),
        ("p", "An itemised receipt is required for every expense above 25 EUR. For smaller amounts a "
              "short description is enough. Keep the original paper receipt for 3 months after "
              "reimbursement, in case of an audit."),
        ("p", "Approved expenses are reimbursed with the next salary payment if they are approved by the "
              "20th of the month; otherwise with the salary of the following month."),
        ("h2", "3. What is not reimbursed"),
        ("p", "Alcohol (except when entertaining customers), traffic and parking fines, hotel minibar and "
              "pay-TV, personal grooming, lost luggage that was not reported to the airline, upgrades "
              "paid without approval, and tips above 10% of the bill."),
    ],
    [
        ("h2", "4. Per-diem allowances for business trips"),
        ("p", "Instead of collecting meal receipts, travellers receive a daily allowance (per diem) for "
              "meals. A partial day applies to the day of arrival and departure and to trips of more than "
              "8 hours without an overnight stay. A full day applies to each 24-hour day away from home."),
        ("table", [
            ["Country", "Partial day", "Full day"],
            ["Germany", "14 EUR", "28 EUR"],
            ["Netherlands", "32 EUR", "47 EUR"],
            ["France", "36 EUR", "53 EUR"],
            ["United Kingdom (London)", "44 EUR", "66 EUR"],
            ["United States (Boston)", "51 EUR", "76 EUR"],
            ["India", "22 EUR", "33 EUR"],
        ]),
        ("p", "If a meal is provided (for example by a customer, at a conference or included in the hotel "
              "rate), the full-day allowance is reduced by 20% for breakfast and by 40% each for lunch "
              "and dinner."),
        ("h2", "5. Mileage"),
        ("p", "Business trips with a private car are reimbursed at 0.30 EUR per kilometre, only when no "
              "pool car was available and the trip was approved in advance. Parking and tolls are "
              "reimbursed in addition with receipts."),
    ],
    [
        ("h2", "6. Approval limits"),
        ("p", "Every expense and every purchase requisition is approved by the person who owns the "
              "budget. The approver must not be the person who spent the money."),
        ("table", [
            ["Amount (per claim or order)", "Approver"],
            ["Up to 1,500 EUR", "Line manager"],
            ["1,500 to 10,000 EUR", "Director of the department"],
            ["10,000 to 100,000 EUR", "Vice President and Head of Finance"],
            ["Above 100,000 EUR", "Chief Financial Officer"],
        ]),
        ("h2", "7. Customer entertainment and gifts"),
        ("p", "Business meals with customers are limited to 80 EUR per person including drinks. List the "
              "names and companies of all participants in SpendWise. Gifts to customers or public "
              "officials must not exceed 50 EUR in value and must be recorded in the gift register."),
        ("h2", "8. Contact"),
        ("p", "Questions about this policy: expenses@acme.example. Violations are reported to the CFO and "
              "may lead to disciplinary action."),
    ],
]

TRAVEL_POLICY: list[list[Block]] = [
    [
        ("h1", "Business Travel Policy"),
        ("p", "Policy FIN-POL-009 - Owner: Travel Management (Travel manager: Julia Bergmann) - "
              "2025 edition"),
        ("h2", "1. Before you travel"),
        ("p", "Every business trip needs approval from your manager before anything is booked. All "
              "flights, trains, hotels and rental cars are booked through TripNest, the Acme travel portal "
              "(travel.acme.example), so that Acme can reach you in an emergency. Bookings made outside "
              "TripNest are only reimbursed when TripNest had no availability."),
        ("h2", "2. Flights"),
        ("p", "Economy class is the standard for flights up to 6 hours. Premium economy may be booked for "
              "flights longer than 6 hours. Business class is allowed only for flights longer than 10 hours "
              "and needs approval from a Vice President. Book flights at least 14 days in advance when "
              "possible."),
        ("h2", "3. Trains"),
        ("p", "Within Germany and for trips to neighbouring countries the train is preferred to flying when "
              "the journey takes less than 5 hours. First class is allowed for train journeys longer than "
              "3 hours. Employees who take more than 10 business train trips per year get a BahnCard 50 "
              "paid by Acme."),
        ("h2", "4. Rental cars"),
        ("p", "Rent compact class cars (for example VW Golf) through TripNest. Larger cars only for 3 or "
              "more travellers or heavy equipment. Decline the rental company's extra insurance: Acme's "
              "fleet insurance covers rental cars."),
    ],
    [
        ("h2", "5. Hotels"),
        ("p", "Book hotels through TripNest. The nightly rate, including taxes but excluding breakfast, must "
              "stay within the cap for the city. Preferred hotels with negotiated rates are marked with a "
              "star in TripNest."),
        ("table", [
            ["City", "Maximum rate per night"],
            ["Munich", "170 EUR"],
            ["Berlin", "150 EUR"],
            ["Eindhoven", "140 EUR"],
            ["Paris", "190 EUR"],
            ["London", "210 GBP"],
            ["Boston", "289 USD"],
            ["Bangalore", "9,500 INR"],
            ["All other cities", "130 EUR"],
        ]),
        ("p", "During trade fairs (for example Automatica in Munich or Hannover Messe), the cap may be "
              "exceeded by up to 50% with approval from your manager. Airbnb and similar rentals are not "
              "allowed, because they do not meet Acme's safety requirements."),
        ("h2", "6. Long trips"),
        ("p", "For assignments longer than 4 weeks in the same place, Travel Management books serviced "
              "apartments instead of hotels. Employees on trips longer than 2 weeks may fly home at "
              "Acme's expense once every 3 weeks."),
    ],
    [
        ("h2", "7. Insurance and emergencies"),
        ("p", "All business travellers are covered by Acme's group travel insurance with Globus Assistance, "
              "policy number GA-447-2025. It covers medical treatment abroad, medical repatriation, "
              "and lost luggage up to 2,000 EUR. You do not need to buy any travel insurance yourself."),
        ("p", "In an emergency while travelling, call the 24/7 Globus Assistance hotline on "
              "+49 89 5550 9110. Mention the policy number and your employee ID."),
        ("h2", "8. High-risk destinations"),
        ("p", "Trips to countries rated high-risk on the Travel Management risk map need approval from the "
              "Chief Security Officer at least 10 working days before departure, and a briefing with "
              "Corporate Security."),
        ("h2", "9. Combining business and leisure"),
        ("p", "You may add private days before or after a business trip (bleisure) if the flight cost does "
              "not increase. Hotel nights and expenses on private days are paid by you."),
    ],
]


class _PolicyPDF(FPDF):
    def footer(self) -> None:  # fpdf2 calls this on every page, before any automatic page break
        self.set_y(-15)
        self.set_font("Helvetica", "I", 8)
        self.cell(0, 10, f"{self.title} - page {self.page_no()} of {{nb}} - Internal", align="C")


def build_pdf(pages: list[list[Block]], title: str, path: Path) -> None:
    pdf = _PolicyPDF(format="A4")
    pdf.set_title(title)
    pdf.set_author("Acme Robotics GmbH")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_auto_page_break(auto=True, margin=20)
    for blocks in pages:
        pdf.add_page()
        for kind, content in blocks:
            if kind == "h1":
                pdf.set_font("Helvetica", "B", 18)
                pdf.multi_cell(0, 10, str(content), new_x="LMARGIN", new_y="NEXT")
                pdf.ln(2)
            elif kind == "h2":
                pdf.ln(3)
                pdf.set_font("Helvetica", "B", 13)
                pdf.multi_cell(0, 8, str(content), new_x="LMARGIN", new_y="NEXT")
            elif kind == "p":
                pdf.set_font("Helvetica", "", 11)
                pdf.multi_cell(0, 6, str(content), new_x="LMARGIN", new_y="NEXT")
                pdf.ln(2)
            elif kind == "table":
                pdf.set_font("Helvetica", "", 10)
                with pdf.table(first_row_as_headings=True) as table:
                    for row in content:  # type: ignore[union-attr]
                        cells = table.row()
                        for cell in row:
                            cells.cell(cell)
                pdf.ln(3)
    pdf.output(str(path))


# DOCX content: ("h1"|"h2"|"h3"|"p"|"bullet", text) or ("table", rows).
REMOTE_WORK: list[Block] = [
    ("h1", "Hybrid and Remote Work Policy"),
    ("p", "Owner: People & Culture. Applies to employees of Acme Robotics GmbH in Germany. Version 2.0, "
          "valid from 1 April 2025."),
    ("h2", "Office days"),
    ("p", "Acme works in a hybrid model. Employees whose job allows it work from the office at least "
          "2 days per week and may work from home on the other days. Teams agree their office days "
          "together; Tuesday and Thursday are the company-wide anchor days on which most meetings with "
          "several teams are held."),
    ("p", "Lab, assembly and field service roles work on site by the nature of their job and are not "
          "covered by the home-working rules below."),
    ("h2", "Working hours"),
    ("p", "Core hours are 10:00 to 15:00, during which everyone should be reachable. Outside core hours "
          "you can arrange your working time freely, within the limits of the Working Hours Act "
          "(maximum 10 hours per day, at least 11 hours of rest between two working days)."),
    ("h2", "Equipment and allowances"),
    ("p", "Acme provides the laptop, a monitor and peripherals for your home office. In addition, the "
          "following allowances are paid:"),
    ("table", [
        ["Allowance", "Amount", "How to claim"],
        ["Home office setup (desk, chair)", "600 EUR once",
         "SpendWise, category Home office, within your first 6 months"],
        ["Internet allowance", "25 EUR per month", "Paid automatically with the salary"],
        ["Ergonomic assessment", "Free", "Book through the EHS office"],
    ]),
    ("h2", "Working from abroad"),
    ("h3", "Within the European Union"),
    ("p", "You may work temporarily from another EU country for up to 20 working days per calendar year. "
          "Register each stay in the HR portal at least 2 weeks in advance, so that People & Culture can "
          "issue the A1 social security certificate."),
    ("h3", "Outside the European Union"),
    ("p", "Working from a country outside the EU needs approval from People & Culture and a tax and "
          "immigration check. Apply at least 6 weeks in advance. Stays are limited to 10 working days "
          "per calendar year."),
    ("h2", "Health, safety and data protection"),
    ("bullet", "Work in a place where others cannot read your screen; use the privacy filter for work "
               "in trains."),
    ("bullet", "Do not print Confidential documents at home."),
    ("bullet", "Report accidents while working from home to People & Culture within 3 days; they are "
               "covered by the statutory accident insurance."),
    ("h2", "Questions"),
    ("p", "Your People & Culture partner or hybrid-work@acme.example."),
]

ONBOARDING_CHECKLIST: list[Block] = [
    ("h1", "New Joiner Onboarding Checklist"),
    ("p", "Use this checklist together with your manager. Tick each item in the onboarding plan in the "
          "HR portal when it is done. Onboarding ends after 90 days with the onboarding review."),
    ("h2", "Week 1"),
    ("bullet", "Collect your badge and laptop, and sign in to all accounts."),
    ("bullet", "Set up Okta Verify and register a FIDO2 security key if your role needs one."),
    ("bullet", "Meet your onboarding buddy and agree a weekly lunch."),
    ("bullet", "Read the Code of Conduct and confirm it in the HR portal."),
    ("h2", "Week 2"),
    ("bullet", "Finish all mandatory trainings in the learning platform."),
    ("bullet", "Engineers: get your first merge request merged, even a small documentation fix."),
    ("bullet", "Join the Orion and Vega product tour in the Building B showroom, every Wednesday at 15:00."),
    ("h2", "First 30 days"),
    ("bullet", "Agree your probation goals with your manager and record them in Pulse by day 30."),
    ("bullet", "Have a 30-day check-in with your People & Culture partner (Munich: Nadia Ferreira)."),
    ("bullet", "Shadow at least one customer support call (engineers: two calls)."),
    ("h2", "By day 90"),
    ("bullet", "Present your first project or learning at your team's demo session."),
    ("bullet", "Hold the onboarding review with your manager; it decides on any open probation questions."),
    ("bullet", "Fill in the onboarding feedback survey (link sent by onboarding@acme.example on day 85)."),
    ("h2", "Who helps with what"),
    ("table", [
        ["Topic", "Contact", "Channel"],
        ["Accounts, laptop, software", "IT Helpdesk", "#it-help"],
        ["Contract, salary, leave", "People & Culture", "hr@acme.example"],
        ["Badge, desk, parking", "Facilities reception", "Extension 1000"],
        ["Everyday questions", "Your onboarding buddy", "Slack direct message"],
    ]),
]


def build_docx(blocks: list[Block], title: str, path: Path) -> None:
    doc = Document()
    props = doc.core_properties
    # An empty core title makes readers fall back to the first heading; one file tests each way.
    props.title = title
    props.author = "Acme Robotics People & Culture"
    props.created = props.modified = props.last_printed = FIXED_DATE.replace(tzinfo=None)
    for kind, content in blocks:
        if kind in ("h1", "h2", "h3"):
            doc.add_heading(str(content), level=int(kind[1]))
        elif kind == "p":
            doc.add_paragraph(str(content))
        elif kind == "bullet":
            doc.add_paragraph(str(content), style="List Bullet")
        elif kind == "table":
            rows: list[list[str]] = content  # type: ignore[assignment]
            table = doc.add_table(rows=len(rows), cols=len(rows[0]))
            table.style = "Table Grid"
            for r, row in enumerate(rows):
                for c, value in enumerate(row):
                    table.cell(r, c).text = value
    raw = io.BytesIO()
    doc.save(raw)
    # Re-zip with a fixed timestamp per entry so regenerating unchanged content gives identical bytes.
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            info = zipfile.ZipInfo(item.filename, date_time=FIXED_DATE.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, src.read(item.filename))


def main() -> None:
    (DOCS / "finance").mkdir(parents=True, exist_ok=True)
    (DOCS / "travel").mkdir(parents=True, exist_ok=True)
    (DOCS / "hr").mkdir(parents=True, exist_ok=True)
    (DOCS / "onboarding").mkdir(parents=True, exist_ok=True)
    build_pdf(EXPENSE_POLICY, "Expense and Approval Policy", DOCS / "finance" / "expense-policy.pdf")
    build_pdf(TRAVEL_POLICY, "Business Travel Policy", DOCS / "travel" / "travel-policy.pdf")
    build_docx(REMOTE_WORK, "Hybrid and Remote Work Policy", DOCS / "hr" / "remote-work-policy.docx")
    build_docx(ONBOARDING_CHECKLIST, "", DOCS / "onboarding" / "onboarding-checklist.docx")
    print("wrote 2 PDFs and 2 DOCX files under", DOCS)


if __name__ == "__main__":
    main()
